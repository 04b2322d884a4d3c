//! Just enough of AWS STS for producers that ask who they are before they
//! produce: `GetCallerIdentity`.
//!
//! The Java KPL's native daemon (0.15.x) builds each stream's ARN from the
//! account STS returns and will not start its pipeline without it; pointed
//! at the emulator (`StsEndpoint`/`StsPort`) it gets an answer here. STS
//! speaks the AWS query protocol: a form-encoded POST (`Action=...&Version=...`)
//! answered in XML, unlike the JSON protocol of Kinesis and Firehose.

use http::{HeaderMap, StatusCode, header};

/// True when a request uses the query protocol (a form-encoded body).
pub(crate) fn is_query_request(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| {
            media
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// The XML document and status answered to one STS request.
pub(crate) struct Answer {
    /// The `Action` asked for, for the emulator's request counters.
    pub(crate) action: String,
    pub(crate) status: StatusCode,
    /// The error code, for the emulator's request counters and the
    /// `x-amzn-ErrorType` header; `None` on success.
    pub(crate) error_code: Option<&'static str>,
    pub(crate) xml: String,
}

pub(crate) const CONTENT_TYPE: &str = "text/xml";

const NAMESPACE: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

/// Answers a query-protocol request. `access_key_id` is the caller's (from
/// its SigV4 signature); it becomes the identity's user id, as on AWS.
pub(crate) fn handle(
    body: &[u8],
    account_id: &str,
    access_key_id: Option<&str>,
    request_id: &str,
) -> Answer {
    let action = form_urlencoded::parse(body)
        .find(|(name, _)| name == "Action")
        .map(|(_, value)| value.into_owned());
    let mut answer = match action.as_deref() {
        Some("GetCallerIdentity") => {
            let user_id = xml_escape(access_key_id.unwrap_or("AIDAEMULATOR"));
            let account = xml_escape(account_id);
            Answer {
                action: String::new(),
                status: StatusCode::OK,
                error_code: None,
                xml: format!(
                    "<GetCallerIdentityResponse xmlns=\"{NAMESPACE}\">\
                     <GetCallerIdentityResult>\
                     <Arn>arn:aws:iam::{account}:user/shardline-emulator</Arn>\
                     <UserId>{user_id}</UserId>\
                     <Account>{account}</Account>\
                     </GetCallerIdentityResult>\
                     <ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata>\
                     </GetCallerIdentityResponse>"
                ),
            }
        }
        Some(other) => error(
            "InvalidAction",
            &format!(
                "Could not find operation {} for version 2011-06-15 \
                 (this emulator answers only GetCallerIdentity)",
                xml_escape(other)
            ),
            request_id,
        ),
        None => error(
            "MissingAction",
            "Missing Action parameter in the form-encoded request body",
            request_id,
        ),
    };
    answer.action = action.unwrap_or_default();
    answer
}

fn error(code: &'static str, message: &str, request_id: &str) -> Answer {
    Answer {
        action: String::new(),
        status: StatusCode::BAD_REQUEST,
        error_code: Some(code),
        xml: format!(
            "<ErrorResponse xmlns=\"{NAMESPACE}\">\
             <Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>\
             <RequestId>{request_id}</RequestId>\
             </ErrorResponse>"
        ),
    }
}

/// Escapes text for an XML element body.
fn xml_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_caller_identity_names_the_account() {
        let answer = handle(
            b"Action=GetCallerIdentity&Version=2011-06-15",
            "123456789012",
            Some("AKIDEXAMPLE"),
            "req-1",
        );
        assert_eq!(answer.status, StatusCode::OK);
        assert!(answer.error_code.is_none());
        assert!(answer.xml.contains("<Account>123456789012</Account>"));
        assert!(answer.xml.contains("<UserId>AKIDEXAMPLE</UserId>"));
        assert!(answer.xml.contains("<RequestId>req-1</RequestId>"));
    }

    #[test]
    fn other_actions_are_refused_by_name() {
        let answer = handle(b"Action=AssumeRole&Version=2011-06-15", "1", None, "r");
        assert_eq!(answer.status, StatusCode::BAD_REQUEST);
        assert_eq!(answer.error_code, Some("InvalidAction"));
        assert!(answer.xml.contains("AssumeRole"));
        let missing = handle(b"Version=2011-06-15", "1", None, "r");
        assert_eq!(missing.error_code, Some("MissingAction"));
    }

    #[test]
    fn values_are_escaped() {
        let answer = handle(b"Action=%3Cx%3E", "1", None, "r");
        assert!(answer.xml.contains("&lt;x&gt;"));
        assert!(!answer.xml.contains("<x>"));
    }
}
