//! The HTTPS listener's identity: a self-signed certificate made at start-up.
//!
//! The certificate names `localhost` and `127.0.0.1`, so clients can use
//! either in the endpoint URL. Clients trust it by adding its PEM (from
//! [`Emulator::cert_pem`](crate::Emulator::cert_pem), `--cert-out` or
//! `GET /_emulator/cert`) to their root store; the C++ SDK under the KPL
//! refuses plain HTTP, which is why this exists.

use std::io;
use std::sync::Arc;

use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

/// A freshly generated certificate and the acceptor that serves it.
pub(crate) struct TlsIdentity {
    pub(crate) cert_pem: String,
    pub(crate) acceptor: TlsAcceptor,
}

pub(crate) fn generate() -> io::Result<TlsIdentity> {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .map_err(io::Error::other)?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    // One crypto provider chosen explicitly, so nothing depends on a
    // process-wide default being installed.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .map_err(io::Error::other)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsIdentity {
        cert_pem: certified.cert.pem(),
        acceptor: TlsAcceptor::from(Arc::new(config)),
    })
}
