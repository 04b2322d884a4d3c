//! The AWS JSON 1.1 envelope: which operation a request names, its content
//! type, the caller's access key id, and helpers to read and write bodies.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use http::{HeaderMap, StatusCode, header};
use serde::{Deserialize, Serialize};

use crate::errors::ApiError;

/// Standard alphabet; accepts input with or without padding because not
/// every client pads.
pub(crate) const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The two services served on one port, told apart by `X-Amz-Target`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Service {
    Kinesis,
    Firehose,
}

/// Splits `X-Amz-Target: Kinesis_20131202.PutRecords` into service and
/// operation.
pub(crate) fn parse_target(headers: &HeaderMap) -> Result<(Service, &str), ApiError> {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::unknown_operation(""))?;
    match target.split_once('.') {
        Some(("Kinesis_20131202", op)) => Ok((Service::Kinesis, op)),
        Some(("Firehose_20150804", op)) => Ok((Service::Firehose, op)),
        _ => Err(ApiError::unknown_operation(target)),
    }
}

/// Checks the request's content type and returns the one to answer with.
/// Only the JSON protocols are spoken; CBOR (which the Java SDK v1 and
/// kinesis-mock use) gets a clear refusal rather than a parse error.
pub(crate) fn response_content_type(headers: &HeaderMap) -> Result<&'static str, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    match media_type.to_ascii_lowercase().as_str() {
        "application/x-amz-json-1.1" => Ok("application/x-amz-json-1.1"),
        "application/x-amz-json-1.0" => Ok("application/x-amz-json-1.0"),
        _ => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "UnsupportedMediaTypeException",
            format!(
                "Content type '{content_type}' is not supported by this emulator; \
                 use application/x-amz-json-1.1 (CBOR is not implemented)"
            ),
        )),
    }
}

/// The access key id of a SigV4 `Authorization` header
/// (`AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/kinesis/aws4_request, ...`).
/// Signatures are never verified: any signer is welcome.
pub(crate) fn access_key_id(headers: &HeaderMap) -> Option<&str> {
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let credential = auth.split("Credential=").nth(1)?;
    credential.split('/').next()
}

/// Parses a request body, mapping serde's errors to what AWS answers:
/// a missing member is a `ValidationException`, anything else (bad JSON,
/// wrong types) a `SerializationException`.
pub(crate) fn parse_json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    // An empty body is an empty object to AWS (e.g. ListStreams with no input).
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| {
        let text = e.to_string();
        if text.starts_with("missing field") {
            ApiError::validation(format!("1 validation error detected: {text}"))
        } else {
            ApiError::serialization(format!("Unable to parse request body: {text}"))
        }
    })
}

/// Decodes one base64 `Data` member, appending the bytes to `out`; `what`
/// names the member for the error message and is only called on error.
///
/// This is where an emulator under benchmark load spends its time, so the
/// member is read from the JSON as bytes (`Cow<[u8]>` with
/// `#[serde(borrow)]`: serde_json then finds the closing quote with a
/// vectorised search and skips UTF-8 validation, which as a `str` cost more
/// than the decoding) and decoded with the SIMD decoder (the `base64`
/// crate's was a third of the emulator's CPU). Whatever is not base64 is
/// still refused, here. The SIMD decoder only says "invalid", so anything
/// it refuses is decoded again by `base64` (padding optional, as before),
/// which has the last word on it: accepted if it always was, else refused
/// with exactly what is wrong.
pub(crate) fn decode_blob(
    encoded: &[u8],
    out: &mut Vec<u8>,
    what: impl FnOnce() -> String,
) -> Result<(), ApiError> {
    let simd = if encoded.len().is_multiple_of(4) {
        base64_simd::STANDARD
    } else {
        base64_simd::STANDARD_NO_PAD
    };
    // On error `decode_append` leaves `out` as it was.
    if simd.decode_append(encoded, out).is_ok() {
        return Ok(());
    }
    let start = out.len();
    BASE64.decode_vec(encoded, out).map_err(|e| {
        out.truncate(start);
        ApiError::serialization(format!("Invalid base64 in {}: {e}", what()))
    })
}

/// Seconds since the epoch with millisecond precision: the JSON protocol's
/// timestamp format.
pub(crate) fn epoch_seconds(t: SystemTime) -> f64 {
    let millis = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    millis as f64 / 1000.0
}

/// Serialises an answer body; our own types cannot fail to serialise.
pub(crate) fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;

    #[test]
    fn blobs_decode_with_or_without_padding_and_name_the_bad_member() {
        for (encoded, expected) in [
            ("", &b""[..]),
            ("aGk=", b"hi"),
            ("aGk", b"hi"),
            ("aGVsbG8gd29ybGQ=", b"hello world"),
            ("aGVsbG8gd29ybGQ", b"hello world"),
        ] {
            let mut out = b"kept".to_vec();
            decode_blob(encoded.as_bytes(), &mut out, || unreachable!()).unwrap();
            assert_eq!(&out[4..], expected, "{encoded:?}");
            assert_eq!(&out[..4], b"kept");
        }
        // Long enough for the vector path, with every alphabet character.
        let data: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
        let encoded = BASE64.encode(&data);
        let mut out = Vec::new();
        decode_blob(encoded.as_bytes(), &mut out, || unreachable!()).unwrap();
        assert_eq!(out, data);

        let mut out = b"kept".to_vec();
        let error = decode_blob(b"aGk*", &mut out, || "records.3.member.data".into()).unwrap_err();
        assert_eq!(error.code, "SerializationException");
        assert!(
            error.message.contains("records.3.member.data"),
            "{}",
            error.message
        );
        assert!(error.message.contains("Invalid"), "{}", error.message);
        assert_eq!(out, b"kept");
    }

    #[test]
    fn data_members_read_as_bytes_unescape_and_refuse_other_types() {
        #[derive(Deserialize)]
        struct Input<'a> {
            #[serde(rename = "Data", borrow)]
            data: Cow<'a, [u8]>,
        }
        let plain = parse_json::<Input<'_>>(br#"{"Data":"aGk/"}"#).unwrap();
        assert!(matches!(plain.data, Cow::Borrowed(b"aGk/")));
        // Some JSON writers escape '/', which base64 uses.
        let escaped = parse_json::<Input<'_>>(br#"{"Data":"aGk\/"}"#).unwrap();
        assert_eq!(&*escaped.data, b"aGk/");
        for body in [&br#"{"Data":5}"#[..], br#"{"Data":[104,105]}"#] {
            assert_eq!(
                parse_json::<Input<'_>>(body).err().map(|e| e.code),
                Some("SerializationException"),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        // Not UTF-8: the JSON reader lets it through, the decoder does not.
        let raw = parse_json::<Input<'_>>(b"{\"Data\":\"aG\xffk\"}").unwrap();
        let error = decode_blob(&raw.data, &mut Vec::new(), || "data".into()).unwrap_err();
        assert_eq!(error.code, "SerializationException");
    }

    #[test]
    fn access_key_is_read_from_sigv4_header() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240101/us-east-1/kinesis/aws4_request, \
             SignedHeaders=host, Signature=abc"
                .parse()
                .unwrap(),
        );
        assert_eq!(access_key_id(&headers), Some("AKIDEXAMPLE"));
    }

    #[test]
    fn targets_name_service_and_operation() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-amz-target",
            "Firehose_20150804.PutRecordBatch".parse().unwrap(),
        );
        assert_eq!(
            parse_target(&headers).unwrap(),
            (Service::Firehose, "PutRecordBatch")
        );
        headers.insert("x-amz-target", "DynamoDB_20120810.GetItem".parse().unwrap());
        assert_eq!(
            parse_target(&headers).unwrap_err().code,
            "UnknownOperationException"
        );
    }

    #[test]
    fn missing_member_is_validation_and_garbage_is_serialization() {
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct Input {
            #[serde(rename = "StreamName")]
            name: String,
        }
        assert_eq!(
            parse_json::<Input>(b"{}").unwrap_err().code,
            "ValidationException"
        );
        assert_eq!(
            parse_json::<Input>(b"{nope").unwrap_err().code,
            "SerializationException"
        );
    }
}
