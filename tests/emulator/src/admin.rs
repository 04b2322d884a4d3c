//! Admin endpoints under `/_emulator/`, on the same port as the API, for
//! harnesses in any language (the library offers the same as methods):
//!
//! | request | answer |
//! |---|---|
//! | `GET /_emulator/stats` | [`Stats`](crate::Stats) as JSON |
//! | `GET`/`PUT /_emulator/faults` | [`Faults`] as JSON |
//! | `GET`/`PUT /_emulator/limits` | [`ShardLimits`] or `null` (off) |
//! | `GET`/`PUT /_emulator/firehose-limits` | [`FirehoseLimits`] or `null` |
//! | `GET /_emulator/records/<stream>` | JSON list of [`StoredRecord`](crate::StoredRecord) (data in base64) |
//! | `GET /_emulator/delivered/<delivery stream>` | JSON list of base64 records |
//! | `POST /_emulator/streams` | `{"name": "s", "shards": 2}` creates a stream |
//! | `GET /_emulator/cert` | the HTTPS certificate (PEM) |
//! | `GET /_emulator/health` | `ok` |
//!
//! Admin requests are never subject to faults.

use base64::Engine as _;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::config::{FirehoseLimits, ShardLimits};
use crate::faults::Faults;
use crate::protocol::{BASE64, to_json};
use crate::server::{App, Body, response};

/// Path prefix of the admin endpoints.
pub(crate) const PREFIX: &str = "/_emulator/";

const JSON: &str = "application/json";

fn json_answer(body: Vec<u8>) -> Response<Body> {
    response(StatusCode::OK, JSON, body)
}

fn problem(status: StatusCode, message: &str) -> Response<Body> {
    response(
        status,
        JSON,
        to_json(&serde_json::json!({ "error": message })),
    )
}

async fn read_json<T: DeserializeOwned>(request: Request<Incoming>) -> Result<T, Response<Body>> {
    let body = Limited::new(request.into_body(), 1024 * 1024)
        .collect()
        .await
        .map_err(|e| problem(StatusCode::BAD_REQUEST, &e.to_string()))?
        .to_bytes();
    serde_json::from_slice(&body).map_err(|e| problem(StatusCode::BAD_REQUEST, &e.to_string()))
}

pub(crate) async fn handle(app: &App, request: Request<Incoming>) -> Response<Body> {
    let method = request.method().clone();
    let path = request.uri().path()[PREFIX.len()..].to_owned();
    let (resource, name) = match path.split_once('/') {
        Some((resource, name)) => (resource, Some(name)),
        None => (path.as_str(), None),
    };
    match (&method, resource, name) {
        (&Method::GET, "health", None) => response(StatusCode::OK, "text/plain", "ok"),
        (&Method::GET, "stats", None) => json_answer(to_json(&app.stats())),
        (&Method::GET, "faults", None) => json_answer(to_json(&app.faults.get())),
        (&Method::PUT | &Method::POST, "faults", None) => {
            match read_json::<Faults>(request).await {
                Ok(faults) => {
                    app.faults.set(faults);
                    json_answer(to_json(&app.faults.get()))
                }
                Err(answer) => answer,
            }
        }
        (&Method::GET, "limits", None) => json_answer(to_json(&app.kinesis.limits())),
        (&Method::PUT | &Method::POST, "limits", None) => {
            match read_json::<Option<ShardLimits>>(request).await {
                Ok(limits) => {
                    app.kinesis.set_limits(limits);
                    json_answer(to_json(&limits))
                }
                Err(answer) => answer,
            }
        }
        (&Method::GET, "firehose-limits", None) => json_answer(to_json(&app.firehose.limits())),
        (&Method::PUT | &Method::POST, "firehose-limits", None) => {
            match read_json::<Option<FirehoseLimits>>(request).await {
                Ok(limits) => {
                    app.firehose.set_limits(limits);
                    json_answer(to_json(&limits))
                }
                Err(answer) => answer,
            }
        }
        (&Method::GET, "records", Some(stream)) => {
            json_answer(to_json(&app.kinesis.records(stream)))
        }
        (&Method::GET, "delivered", Some(stream)) => {
            let records: Vec<String> = app
                .firehose
                .delivered(stream)
                .iter()
                .map(|r| BASE64.encode(r))
                .collect();
            json_answer(to_json(&records))
        }
        (&Method::POST, "streams", None) => {
            #[derive(Deserialize)]
            struct NewStream {
                name: String,
                shards: u32,
            }
            match read_json::<NewStream>(request).await {
                Ok(s) => {
                    let created = app.kinesis.create_stream(&s.name, s.shards);
                    json_answer(to_json(&serde_json::json!({ "created": created })))
                }
                Err(answer) => answer,
            }
        }
        (&Method::GET, "cert", None) => match &app.cert_pem {
            Some(pem) => response(StatusCode::OK, "application/x-pem-file", pem.clone()),
            None => problem(StatusCode::NOT_FOUND, "TLS is not enabled"),
        },
        _ => problem(
            StatusCode::NOT_FOUND,
            &format!("no admin endpoint {method} {PREFIX}{path}"),
        ),
    }
}
