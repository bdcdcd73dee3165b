//! The rent-roll import over HTTP: the JSON API (`POST /api/v1/roll` with the
//! file as the body, bulk `PUT /api/v1/residents`, the review queue) and what the Residents
//! page shares with it: the report's JSON, and the previews waiting to be applied.
//!
//! Reading the file is `locker_app::roll` (the site's `[import]` settings); every rule is the
//! core's (`Core::plan_roll`, `Request::ImportRoll`), so the page and the API cannot differ.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use locker_app::roll::{FileReport, Layout, RollReport};
use locker_app::{Actor, AppError};
use locker_core::{RejectCode, Request, ReviewDecision, RollPlan, RollRow, RollSummary, Tenancy};
use locker_roll::Encoding;
use serde::{Deserialize, Serialize};

use crate::auth::{Api, Staff};
use crate::error::{json_error as error, ApiError};
use crate::wire::ReplyJson;
use crate::Web;

/// The biggest upload: the reader's own limit, plus room for a form's other fields.
pub const MAX_UPLOAD: usize = locker_roll::MAX_BYTES + (64 << 10);

pub fn router() -> Router<Arc<Web>> {
    Router::new()
        .route(
            "/api/v1/roll",
            post(import_file).layer(DefaultBodyLimit::max(MAX_UPLOAD)),
        )
        .route("/api/v1/roll/review", get(reviews))
        .route("/api/v1/roll/review/{id}", post(resolve))
}

/// The bulk `PUT /api/v1/residents`, merged into the residents' route by `api.rs`.
pub fn put_residents() -> axum::routing::MethodRouter<Arc<Web>> {
    axum::routing::put(put_roll).layer(DefaultBodyLimit::max(MAX_UPLOAD))
}

/// Entries listed per list in an answer unless `limit` says otherwise; the summary always
/// counts them all.
const DEFAULT_LIMIT: usize = 1_000;

/// An import's answer: the summary, and each list cut to `limit` entries.
#[derive(Serialize)]
pub struct ReportJson {
    pub applied: bool,
    pub source: String,
    pub summary: RollSummary,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<FileReport>,
    pub plan: RollPlan,
    /// True when a list was cut to `limit`.
    pub truncated: bool,
}

impl ReportJson {
    pub fn new(report: RollReport, limit: usize) -> ReportJson {
        let summary = report.plan.summary();
        let mut plan = report.plan;
        let mut file = report.file;
        let mut truncated = false;
        let mut cut = |n: usize| {
            truncated |= n > limit;
            n.min(limit)
        };
        plan.create.truncate(cut(plan.create.len()));
        plan.update.truncate(cut(plan.update.len()));
        plan.review.truncate(cut(plan.review.len()));
        plan.rejected.truncate(cut(plan.rejected.len()));
        plan.leaving.truncate(cut(plan.leaving.len()));
        plan.move_out.truncate(cut(plan.move_out.len()));
        if let Some(f) = file.as_mut() {
            f.skipped.truncate(cut(f.skipped.len()));
        }
        ReportJson {
            applied: report.applied,
            source: report.source,
            summary,
            file,
            plan,
            truncated,
        }
    }
}

/// What the caller asked of an import.
struct How {
    dry_run: bool,
    skip_rejected: bool,
    /// Entries per list in the answer.
    limit: usize,
}

/// Plan (a dry run) or apply rows; an apply refused for rejected rows answers 422 with the
/// report, so the caller sees every rejected line.
async fn plan_or_apply(
    web: &Web,
    who: &Actor,
    source: String,
    file: Option<FileReport>,
    rows: Vec<RollRow>,
    how: How,
) -> Response {
    let How {
        dry_run,
        skip_rejected,
        limit,
    } = how;
    let report = |applied: bool, plan: RollPlan| {
        ReportJson::new(
            RollReport {
                applied,
                source: source.clone(),
                file: file.clone(),
                plan,
            },
            limit,
        )
    };
    if dry_run {
        return match web.app.plan_roll(who, rows).await {
            Ok(plan) => Json(report(false, plan)).into_response(),
            Err(e) => ApiError(e).into_response(),
        };
    }
    // The core refuses an import with rejected rows, recording nothing; the answer then
    // carries the report, so the caller sees every rejected line.
    let kept = (!skip_rejected).then(|| rows.clone());
    match web.app.import_roll(who, &source, rows, skip_rejected).await {
        Ok((plan, _)) => Json(report(true, plan)).into_response(),
        Err(AppError::Rejected(r)) if kept.is_some() && r.code == RejectCode::InvalidInput => {
            match web.app.plan_roll(who, kept.unwrap_or_default()).await {
                Ok(plan) if !plan.rejected.is_empty() => refused(r.message, report(false, plan)),
                _ => ApiError(AppError::Rejected(r)).into_response(),
            }
        }
        Err(e) => ApiError(e).into_response(),
    }
}

/// 422 with the error and the report.
fn refused(message: String, report: ReportJson) -> Response {
    #[derive(Serialize)]
    struct Refused {
        error: String,
        code: RejectCode,
        report: ReportJson,
    }
    // Only a refusal for rejected rows comes here (`plan_or_apply`): the core's `invalid_input`.
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(Refused {
            error: message,
            code: RejectCode::InvalidInput,
            report,
        }),
    )
        .into_response()
}

/// `?layout=yardi&encoding=windows-1252&dry_run=true&skip_rejected=false&source=…&limit=…`
#[derive(Deserialize, Default)]
#[serde(default)]
struct ImportQuery {
    layout: Option<String>,
    encoding: Option<Encoding>,
    dry_run: bool,
    skip_rejected: bool,
    source: Option<String>,
    limit: Option<usize>,
}

/// The layout a caller named: unknown ones are refused with the list.
pub fn layout_named(web: &Web, name: Option<&str>) -> Result<Option<Layout>, String> {
    let Some(name) = name.map(str::trim).filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    let layouts = web.app.roll_settings().layouts();
    match Layout::from_key(name).filter(|l| layouts.contains(l)) {
        Some(l) => Ok(Some(l)),
        None => Err(format!(
            "unknown layout {name:?} (this hub knows: {})",
            layouts
                .iter()
                .map(|l| l.key())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// `POST /api/v1/roll` (staff): the export file as the body, read with the
/// `layout` named (the site's default without one).
async fn import_file(
    State(web): State<Arc<Web>>,
    Api(who, ..): Api<Staff>,
    query: Result<Query<ImportQuery>, axum::extract::rejection::QueryRejection>,
    body: Bytes,
) -> Response {
    let Ok(Query(q)) = query else {
        return error(
            StatusCode::BAD_REQUEST,
            "query: layout, encoding (utf-8 or windows-1252), dry_run and skip_rejected (true or false), source, limit",
        );
    };
    let layout = match layout_named(&web, q.layout.as_deref()) {
        Ok(l) => l,
        Err(m) => return error(StatusCode::BAD_REQUEST, m),
    };
    let who = who.actor();
    let (layout, roll) = match web
        .app
        .read_roll(&who, body.to_vec(), layout, q.encoding)
        .await
    {
        Ok(r) => r,
        Err(e) => return ApiError(e).into_response(),
    };
    let file = FileReport::new(layout, &roll);
    let source = q.source.unwrap_or_else(|| "API upload".into());
    plan_or_apply(
        &web,
        &who,
        source,
        Some(file),
        roll.rows,
        How {
            dry_run: q.dry_run,
            skip_rejected: q.skip_rejected,
            limit: q.limit.unwrap_or(DEFAULT_LIMIT),
        },
    )
    .await
}

/// One resident of the bulk `PUT /api/v1/residents`.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RollItem {
    #[serde(default)]
    resident: Option<String>,
    unit: String,
    name: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    lease_start: Option<String>,
    #[serde(default)]
    lease_end: Option<String>,
    #[serde(default)]
    move_in: Option<String>,
    #[serde(default)]
    move_out: Option<String>,
}

/// The body of `PUT /api/v1/residents`.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RollBody {
    residents: Vec<RollItem>,
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    skip_rejected: bool,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
}

/// `PUT /api/v1/residents` (staff): the whole rent roll as JSON, imported like a file (item
/// numbers from 1 stand for line numbers).
async fn put_roll(State(web): State<Arc<Web>>, Api(who, ..): Api<Staff>, raw: Bytes) -> Response {
    let body: RollBody = match serde_json::from_slice(&raw) {
        Ok(b) => b,
        Err(e) if e.is_data() => return error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("body is not JSON: {e}")),
    };
    let rows = body
        .residents
        .into_iter()
        .enumerate()
        .map(|(i, r)| RollRow {
            line: i as u64 + 1,
            resident: r.resident,
            unit: r.unit,
            name: r.name,
            email: r.email,
            phone: r.phone,
            tenancy: Tenancy {
                lease_start: r.lease_start,
                lease_end: r.lease_end,
                move_in: r.move_in,
                move_out: r.move_out,
            },
        })
        .collect();
    plan_or_apply(
        &web,
        &who.actor(),
        body.source.unwrap_or_else(|| "API".into()),
        None,
        rows,
        How {
            dry_run: body.dry_run,
            skip_rejected: body.skip_rejected,
            limit: body.limit.unwrap_or(DEFAULT_LIMIT),
        },
    )
    .await
}

/// The answer of `GET /api/v1/roll/review`.
#[derive(Serialize)]
pub struct ReviewsJson {
    pub items: Vec<locker_core::RollReviewItem>,
    pub last_import: Option<locker_core::RollImportView>,
}

/// `GET /api/v1/roll/review` (staff): the rows waiting for a decision, and the last
/// import.
async fn reviews(State(web): State<Arc<Web>>, Api(who, ..): Api<Staff>) -> Response {
    match web.app.roll_reviews(&who.actor()).await {
        Ok((items, last_import)) => Json(ReviewsJson { items, last_import }).into_response(),
        Err(e) => ApiError(e).into_response(),
    }
}

/// The body of `POST /api/v1/roll/review/{id}`.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Decision {
    decision: ReviewDecision,
}

/// `POST /api/v1/roll/review/{id}` (staff): `{"decision": "same" | "new" | "dismiss"}`.
async fn resolve(
    State(web): State<Arc<Web>>,
    Api(who, ..): Api<Staff>,
    UrlPath(id): UrlPath<String>,
    raw: Bytes,
) -> Response {
    let d: Decision = match serde_json::from_slice(&raw) {
        Ok(d) => d,
        Err(e) if e.is_data() => return error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("body is not JSON: {e}")),
    };
    let who = who.actor();
    let request = Request::ResolveRollReview {
        by: who.operator(),
        review: id,
        decision: d.decision,
    };
    match web.app.request(&who, "review", request).await {
        Ok(reply) => Json(ReplyJson::from(&reply)).into_response(),
        Err(e) => ApiError(e).into_response(),
    }
}

/// Previews on the Residents page waiting to be applied: the rows read, by a random token,
/// for the one who uploaded them. Two at a time, for half an hour; a restart forgets them
/// (upload again).
#[derive(Default)]
pub struct Staged {
    items: Mutex<HashMap<String, StagedImport>>,
}

/// One preview.
#[derive(Clone)]
pub struct StagedImport {
    pub who: String,
    pub source: String,
    pub rows: Vec<RollRow>,
    pub file: FileReport,
    made: Instant,
}

/// How long a preview may wait to be applied.
const STAGED_FOR: Duration = Duration::from_secs(30 * 60);
/// Previews kept at once: each holds its roll's rows (about 20 MB for 100,000), and one staff
/// member previewing at a time is the common case.
const STAGED_MAX: usize = 2;

impl Staged {
    /// Keep a preview; its token.
    pub fn put(&self, who: &str, source: String, rows: Vec<RollRow>, file: FileReport) -> String {
        let token = crate::session::random_token();
        let Ok(mut items) = self.items.lock() else {
            return token;
        };
        items.retain(|_, s| s.made.elapsed() < STAGED_FOR);
        while items.len() >= STAGED_MAX {
            let oldest = items
                .iter()
                .min_by_key(|(_, s)| s.made)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => items.remove(&k),
                None => break,
            };
        }
        items.insert(
            token.clone(),
            StagedImport {
                who: who.to_owned(),
                source,
                rows,
                file,
                made: Instant::now(),
            },
        );
        token
    }

    /// Take the preview `token` of `who` (once).
    pub fn take(&self, token: &str, who: &str) -> Result<StagedImport, AppError> {
        let gone = || {
            AppError::Rejected(locker_core::Rejection::new(
                RejectCode::InvalidInput,
                "that preview has expired or was applied already: upload the file again",
            ))
        };
        let mut items = self.items.lock().map_err(|_| gone())?;
        match items.get(token) {
            Some(s) if s.who == who && s.made.elapsed() < STAGED_FOR => {
                items.remove(token).ok_or_else(gone)
            }
            _ => Err(gone()),
        }
    }
}
