//! The one mapping from the application's errors to HTTP: every JSON answer and every page
//! takes its status from [`status`], and a core refusal from [`rejection_status`].

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use locker_app::AppError;
use locker_core::RejectCode;
use serde::Serialize;

/// The status of a core refusal, wherever it is answered.
pub fn rejection_status(code: RejectCode) -> StatusCode {
    match code {
        RejectCode::InvalidInput => StatusCode::UNPROCESSABLE_ENTITY,
        RejectCode::NotPermitted => StatusCode::FORBIDDEN,
        // The hub's disk refuses writes: try again later; nothing is wrong with the request.
        RejectCode::StorageUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        // Everything else is the state of the site saying no: a conflict, not a bad request.
        RejectCode::UnknownBank
        | RejectCode::UnknownDoor
        | RejectCode::UnknownResident
        | RejectCode::UnknownCarrier
        | RejectCode::UnknownParcel
        | RejectCode::UnknownReservation
        | RejectCode::UnknownUnlock
        | RejectCode::UnknownAlert
        | RejectCode::BadCredential
        | RejectCode::KeypadLocked
        | RejectCode::AmbiguousRecipient
        | RejectCode::AmbiguousCode
        | RejectCode::BankOffline
        | RejectCode::NothingToCollect
        | RejectCode::NotAllowedNow
        | RejectCode::RequestIdReused
        | RejectCode::RateLimited
        | RejectCode::AlreadyExists => StatusCode::CONFLICT,
    }
}

/// The status of any application error.
pub fn status(e: &AppError) -> StatusCode {
    match e {
        AppError::Rejected(r) => rejection_status(r.code),
        AppError::NotFound(_) => StatusCode::NOT_FOUND,
        AppError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
        AppError::Forbidden(_) => StatusCode::FORBIDDEN,
        AppError::Conflict(_) => StatusCode::CONFLICT,
        AppError::Stopping => StatusCode::SERVICE_UNAVAILABLE,
        AppError::Timeout => StatusCode::GATEWAY_TIMEOUT,
        AppError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The JSON body of every error answer: `{"error": "...", "code": "..."}` (`code` for a core
/// refusal only).
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct ErrorBody {
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<RejectCode>,
}

/// A JSON error answer with an explicit status (for what fails before a service is called: no
/// session, a body that is not JSON).
pub fn json_error(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        Json(ErrorBody {
            error: message.into(),
            code: None,
        }),
    )
        .into_response()
}

/// An application error as a JSON answer.
pub struct ApiError(pub AppError);

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            status(&self.0),
            Json(ErrorBody {
                error: self.0.to_string(),
                code: self.0.code(),
            }),
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use locker_core::Rejection;

    #[test]
    fn every_error_has_one_status() {
        let r = |c| AppError::Rejected(Rejection::new(c, "x"));
        assert_eq!(status(&r(RejectCode::InvalidInput)), 422);
        assert_eq!(status(&r(RejectCode::NotPermitted)), 403);
        assert_eq!(status(&r(RejectCode::StorageUnavailable)), 503);
        assert_eq!(status(&r(RejectCode::BadCredential)), 409);
        assert_eq!(status(&AppError::NotFound("x".into())), 404);
        assert_eq!(status(&AppError::Timeout), 504);
    }
}
