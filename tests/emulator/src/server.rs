//! The HTTP(S) front end: accepts connections, applies faults, reads a
//! request, hands it to the Kinesis or Firehose side, and writes the answer.
//!
//! One hyper connection task per socket (HTTP/1.1 keep-alive or HTTP/2),
//! all owned by the accept loop's `JoinSet`, so stopping the accept loop
//! closes every connection.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::admin;
use crate::errors::ApiError;
use crate::faults::{Admission, FaultInjector, RequestFate};
use crate::firehose::Firehose;
use crate::kinesis::Kinesis;
use crate::protocol::{self, Service};
use crate::stats::{RequestCounters, Stats};
use crate::sts;

/// Largest request body read: a 10 MiB PutRecords (the highest record-size
/// setting) in base64 plus JSON framing fits with room to spare; anything
/// larger is refused before it is buffered.
const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

pub(crate) type Body = Full<Bytes>;

/// Everything the handlers share.
#[derive(Debug)]
pub(crate) struct App {
    pub(crate) kinesis: Kinesis,
    pub(crate) firehose: Firehose,
    pub(crate) faults: FaultInjector,
    pub(crate) requests: RequestCounters,
    pub(crate) cert_pem: Option<String>,
    next_request_id: AtomicU64,
}

impl App {
    pub(crate) fn new(
        kinesis: Kinesis,
        firehose: Firehose,
        faults: FaultInjector,
        cert_pem: Option<String>,
    ) -> Self {
        App {
            kinesis,
            firehose,
            faults,
            requests: RequestCounters::default(),
            cert_pem,
            next_request_id: AtomicU64::new(1),
        }
    }

    /// A fresh id for the `x-amzn-RequestId` header (and STS's XML).
    fn next_request_id(&self) -> String {
        let id = self.next_request_id.fetch_add(1, Ordering::Relaxed);
        format!("{id:08x}-0000-4000-8000-000000000000")
    }

    pub(crate) fn stats(&self) -> Stats {
        Stats {
            requests: self.requests.snapshot(),
            streams: self.kinesis.stats(),
            delivery_streams: self.firehose.stats(),
        }
    }
}

/// Returned by the service to make hyper close the socket without writing
/// an answer: that is how a dropped connection is injected.
#[derive(Debug)]
pub(crate) struct DropConnection;

impl fmt::Display for DropConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection dropped on purpose (fault injection)")
    }
}

impl std::error::Error for DropConnection {}

pub(crate) fn response(
    status: StatusCode,
    content_type: &str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}

fn error_response(app: &App, error: &ApiError, content_type: &str) -> Response<Body> {
    if error.status.is_client_error() {
        app.requests.update(|s| {
            s.client_errors += 1;
            if matches!(
                error.code,
                "ProvisionedThroughputExceededException" | "ServiceUnavailableException"
            ) {
                s.throttled += 1;
            }
        });
    } else if error.code == "ServiceUnavailableException" {
        // Firehose throttling is a 503 too.
        app.requests.update(|s| s.throttled += 1);
    }
    let mut response = response(error.status, content_type, error.body());
    if let Ok(value) = error.code.parse() {
        response.headers_mut().insert("x-amzn-errortype", value);
    }
    response
}

async fn read_body(body: Incoming) -> Result<Bytes, ApiError> {
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "SerializationException",
            format!("Unable to read the request body: {e}"),
        )),
    }
}

/// Answers one HTTP request.
async fn handle(
    app: Arc<App>,
    request: Request<Incoming>,
) -> Result<Response<Body>, DropConnection> {
    if request.uri().path().starts_with(admin::PREFIX) {
        return Ok(admin::handle(&app, request).await);
    }
    let default_type = "application/x-amz-json-1.1";
    if request.method() != Method::POST {
        let error = ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "UnknownOperationException",
            "The AWS JSON protocol expects POST / (admin endpoints live under /_emulator/)",
        );
        return Ok(error_response(&app, &error, default_type));
    }
    if sts::is_query_request(request.headers()) {
        return Ok(answer_sts(&app, request).await);
    }
    let content_type = match protocol::response_content_type(request.headers()) {
        Ok(t) => t,
        Err(e) => return Ok(error_response(&app, &e, default_type)),
    };
    let (service, operation) = match protocol::parse_target(request.headers()) {
        Ok((s, op)) => (s, op.to_owned()),
        Err(e) => return Ok(error_response(&app, &e, content_type)),
    };
    let access_key_id = protocol::access_key_id(request.headers()).map(str::to_owned);
    let service_name = match service {
        Service::Kinesis => "Kinesis",
        Service::Firehose => "Firehose",
    };
    app.requests.count_operation(service_name, &operation);
    let body = match read_body(request.into_body()).await {
        Ok(b) => b,
        Err(e) => return Ok(error_response(&app, &e, content_type)),
    };

    // Faults, in the order a real front end would show them: a stalled or
    // slow server, then a lost connection, then a refused or failed call.
    // Counted before waiting: a client that gives up never sees the end.
    let mut stalled = app.faults.is_stalled();
    if stalled {
        app.requests.update(|s| s.stalled += 1);
        app.faults.wait_while_stalled().await;
    }
    let (delay, fate) = app.faults.roll_request();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if fate == RequestFate::DropConnection {
        app.requests.update(|s| s.dropped_connections += 1);
        return Err(DropConnection);
    }
    // Checked last, just before the request acts (see `Emulator::settle`).
    let _admitted = loop {
        match app.faults.admit(access_key_id.as_deref()) {
            Admission::Admitted(request) => break request,
            Admission::Expired => {
                app.requests.update(|s| s.expired_token_rejections += 1);
                return Ok(error_response(
                    &app,
                    &ApiError::expired_token(),
                    content_type,
                ));
            }
            Admission::Stalled => {
                if !stalled {
                    stalled = true;
                    app.requests.update(|s| s.stalled += 1);
                }
                app.faults.wait_while_stalled().await;
            }
        }
    };
    match fate {
        RequestFate::InternalError => {
            app.requests.update(|s| s.injected_internal_errors += 1);
            return Ok(error_response(
                &app,
                &ApiError::internal_failure(),
                content_type,
            ));
        }
        RequestFate::Unavailable => {
            app.requests.update(|s| s.injected_unavailable += 1);
            let error = match service {
                Service::Kinesis => ApiError::service_unavailable(),
                Service::Firehose => ApiError::firehose_unavailable(),
            };
            return Ok(error_response(&app, &error, content_type));
        }
        RequestFate::Proceed | RequestFate::DropConnection => {}
    }

    let result = match service {
        Service::Kinesis => app.kinesis.handle(&operation, &body, &app.faults),
        Service::Firehose => app.firehose.handle(&operation, &body, &app.faults),
    };
    let mut response = match result {
        Ok(json) => response(StatusCode::OK, content_type, json),
        Err(e) => error_response(&app, &e, content_type),
    };
    if let Ok(value) = app.next_request_id().parse() {
        response.headers_mut().insert("x-amzn-requestid", value);
    }
    Ok(response)
}

/// Answers an STS query-protocol request. Faults are not applied: they
/// model the data plane, and the KPL asks STS once, at start-up.
async fn answer_sts(app: &App, request: Request<Incoming>) -> Response<Body> {
    let access_key_id = protocol::access_key_id(request.headers()).map(str::to_owned);
    let body = match read_body(request.into_body()).await {
        Ok(b) => b,
        Err(e) => return error_response(app, &e, sts::CONTENT_TYPE),
    };
    let request_id = app.next_request_id();
    let answer = sts::handle(
        &body,
        app.kinesis.account_id(),
        access_key_id.as_deref(),
        &request_id,
    );
    app.requests.count_operation("STS", &answer.action);
    if answer.error_code.is_some() {
        app.requests.update(|s| s.client_errors += 1);
    }
    let mut response = response(answer.status, sts::CONTENT_TYPE, answer.xml);
    if let Some(value) = answer.error_code.and_then(|code| code.parse().ok()) {
        response.headers_mut().insert("x-amzn-errortype", value);
    }
    response
}

async fn serve_connection(stream: TcpStream, tls: Option<TlsAcceptor>, app: Arc<App>) {
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |request| handle(Arc::clone(&app), request));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new());
    builder.http2().timer(TokioTimer::new());
    // Errors here are the client's business (reset, bad TLS, dropped on
    // purpose); the emulator just forgets the connection.
    match tls {
        None => {
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        }
        Some(acceptor) => {
            if let Ok(stream) = acceptor.accept(stream).await {
                let _ = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            }
        }
    }
}

/// Accepts connections until `shutdown` turns true or its sender is dropped.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Arc<App>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                connections.spawn(serve_connection(stream, tls.clone(), Arc::clone(&app)));
            }
            // Out of file descriptors and the like: back off instead of spinning.
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
        while connections.try_join_next().is_some() {}
    }
    // Dropping the set aborts every open connection.
    drop(connections);
}
