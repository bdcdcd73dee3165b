//! Residents: list and search, add, edit (unit, contact, accessible reach) and deactivate (moved
//! out); the rent-roll import (upload, preview, apply) and its review queue (`roll.rs` in the
//! core decides; `import.rs` holds the previews).
//! Every change is a core request recorded under the signed-in user's name, through the same
//! service as the JSON API (`/api/v1/residents`); the core checks it.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use locker_core::{RegisterMode, RejectCode, Request, ResidentId, ResidentView};

use super::{bad_form, by, error_page, field, respond, run};
use crate::auth::{FilePost, FormPost, Page, Staff};
use crate::html::{self, escape};
use crate::Web;

pub fn router() -> Router<Arc<Web>> {
    Router::new()
        .route("/residents", get(page).post(add))
        .route("/residents/{id}", post(edit))
        .route("/residents/{id}/deactivate", post(deactivate))
        .route(
            "/roll",
            post(preview).layer(axum::extract::DefaultBodyLimit::max(
                crate::import::MAX_UPLOAD,
            )),
        )
        .route("/roll/apply", post(apply))
        .route("/roll/review/{id}", post(resolve_review))
}

/// Does a resident match the search text (id, unit or name, any case)?
fn matches(r: &ResidentView, q: &str) -> bool {
    let q = q.to_lowercase();
    r.resident.as_str().to_lowercase().contains(&q)
        || r.unit.to_lowercase().contains(&q)
        || r.name
            .as_deref()
            .is_some_and(|n| n.to_lowercase().contains(&q))
}

/// Residents listed per page.
const PAGE_ROWS: usize = 100;

async fn page(
    State(web): State<Arc<Web>>,
    Page(p, ..): Page<Staff>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let all = match web.app.residents(&p.actor()).await {
        Ok(l) => l,
        Err(e) => return error_page("/", &e),
    };
    let (reviews, last_import) = match web.app.roll_reviews(&p.actor()).await {
        Ok(r) => r,
        Err(e) => return error_page("/", &e),
    };
    let search = q.get("q").map(|s| s.trim()).unwrap_or("");
    let show_all = q.get("all").is_some_and(|v| v == "yes");
    let csrf = html::csrf(&p);
    let shown: Vec<&ResidentView> = all
        .iter()
        .filter(|r| (show_all || r.active) && matches(r, search))
        .collect();
    // A page of rows: each carries its own edit form, so a big building's full list would be
    // far over the 200 KB page budget on a cheap tablet.
    let pages = shown.len().div_ceil(PAGE_ROWS).max(1);
    let page_no = q
        .get("page")
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(1)
        .clamp(1, pages);
    let rows: String = shown
        .iter()
        .skip((page_no - 1) * PAGE_ROWS)
        .take(PAGE_ROWS)
        .map(|r| {
            let u = html::url(r.resident.as_str());
            let deactivate = if r.active {
                format!(
                    "<form method=post action=\"/residents/{u}/deactivate\" class=inline data-confirm=\"Deactivate {id}? They get no new parcels.\">{csrf}<button class=danger>Deactivate</button></form>",
                    id = escape(r.resident.as_str())
                )
            } else {
                String::new()
            };
            let state = match (r.active, r.off_roll_since) {
                (false, _) => "deactivated".to_owned(),
                (true, Some(since)) => format!("off the rent roll since {}", web.time(since)),
                (true, None) if r.on_roll => "active (rent roll)".to_owned(),
                (true, None) => "active".to_owned(),
            };
            format!(
                "<tr data-resident=\"{id}\"><td>{id}</td><td>{state}</td><td>{hold}</td><td>{badges}</td><td>\
                 <form method=post action=\"/residents/{u}\" class=inline>{csrf}\
                 <label>Name <input name=name value=\"{name}\" maxlength=100 size=14></label>\
                 <label>Unit <input name=unit value=\"{unit}\" required maxlength=32 size=6></label>\
                 <label>Email <input name=email type=email value=\"{email}\" maxlength=254 size=18></label>\
                 <label>Phone <input name=phone type=tel value=\"{phone}\" maxlength=16 size=12></label>\
                 <label>Language <select name=language><option value=en{en}>English<option value=es{es}>Español</select></label>\
                 <label>Tell by <select name=notify>{notify}</select></label>\
                 <label>Also tell: email <input name=secondary_email type=email value=\"{semail}\" maxlength=254 size=14></label>\
                 <label>phone <input name=secondary_phone type=tel value=\"{sphone}\" maxlength=16 size=11></label>\
                 <label><input type=checkbox name=accessible value=yes{acc}> accessible reach</label>\
                 <button>{save}</button></form>{deactivate}</td></tr>",
                id = escape(r.resident.as_str()),
                state = escape(&state),
                name = escape(r.name.as_deref().unwrap_or("")),
                hold = r.hold_until.map(|t| web.time(t)).unwrap_or_else(|| "—".into()),
                badges = r.badges,
                unit = escape(&r.unit),
                email = escape(r.email.as_deref().unwrap_or("")),
                phone = escape(r.phone.as_deref().unwrap_or("")),
                en = if r.language.as_deref() == Some("es") { "" } else { " selected" },
                es = if r.language.as_deref() == Some("es") { " selected" } else { "" },
                acc = if r.accessible { " checked" } else { "" },
                notify = notify_options(r.notify.as_deref()),
                semail = escape(r.secondary_email.as_deref().unwrap_or("")),
                sphone = escape(r.secondary_phone.as_deref().unwrap_or("")),
                save = if r.active { "Save" } else { "Save and reactivate" },
            )
        })
        .collect();
    let more = if pages > 1 {
        let link = |n: usize, label: &str| {
            format!(
                "<a href=\"/residents?q={}{}&page={n}\">{label}</a>",
                html::url(search),
                if show_all { "&all=yes" } else { "" }
            )
        };
        format!(
            "<p class=note>Page {page_no} of {pages}. {} {}</p>",
            if page_no > 1 {
                link(page_no - 1, "← previous")
            } else {
                String::new()
            },
            if page_no < pages {
                link(page_no + 1, "next →")
            } else {
                String::new()
            },
        )
    } else {
        String::new()
    };
    let body = format!(
        "{roll}<form method=get class=inline><input name=q placeholder=\"resident, unit or name\" value=\"{s}\">\
         <label><input type=checkbox name=all value=yes{all}> include deactivated</label><button>Search</button></form>\
         <p class=note>{n} of {total} residents.</p>\
         <table><tr><th>Resident</th><th>State</th><th>Vacation hold until</th><th>Badges</th><th>Change</th></tr>{rows}</table>{more}\
         <h2>Add a resident</h2><form method=post action=/residents class=inline>{csrf}\
         <label>Resident id <input name=resident required maxlength=64></label>\
         <label>Name <input name=name maxlength=100></label>\
         <label>Unit <input name=unit required maxlength=32></label>\
         <label>Email <input name=email type=email maxlength=254></label>\
         <label>Phone <input name=phone type=tel maxlength=16 placeholder=+15551234567></label>\
         <label>Language <select name=language><option value=en>English<option value=es>Español</select></label>\
         <label><input type=checkbox name=accessible value=yes> accessible reach</label><button>Add</button></form>\
         <script src=/assets/app.js defer></script>",
        roll = roll_section(&web, &csrf, &reviews, last_import.as_ref()),
        s = escape(search),
        all = if show_all { " checked" } else { "" },
        n = shown.len(),
        total = all.len(),
    );
    Html(html::page(&p, "/residents", "Residents", &q, &body)).into_response()
}

async fn add(State(web): State<Arc<Web>>, post: FormPost<Staff>) -> Response {
    let (p, f) = (post.who, post.fields);
    let (id, unit) = match (field(&f, "resident"), field(&f, "unit")) {
        (Ok(i), Ok(u)) => (i, u),
        (Err(e), _) | (_, Err(e)) => return bad_form("/residents", e),
    };
    let accessible = f.get("accessible").is_some_and(|v| v == "yes");
    let contact = contact_fields(&f, false);
    let answer = web
        .app
        .register_resident(&p.actor(), id, unit, accessible, RegisterMode::Add, contact)
        .await;
    respond("/residents", answer, &format!("Added {id}"), &[])
}

/// The "tell by" choices, `current` selected (`both` when not set).
fn notify_options(current: Option<&str>) -> String {
    let current = current.unwrap_or("both");
    [
        ("both", "email and text/push"),
        ("email", "email only"),
        ("webhook", "text/push only"),
        ("none", "no messages"),
    ]
    .iter()
    .map(|(value, label)| {
        format!(
            "<option value={value}{}>{label}",
            if *value == current { " selected" } else { "" }
        )
    })
    .collect()
}

/// The contact a form gives. A field not in the form is left as it is; an empty one is not set
/// (`clear_empty: false`, adding) or cleared (`true`, editing a resident's row).
fn contact_fields(
    f: &std::collections::HashMap<String, String>,
    clear_empty: bool,
) -> locker_core::Contact {
    let given = |name: &str| {
        f.get(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| clear_empty || !v.is_empty())
    };
    locker_core::Contact {
        name: given("name"),
        email: given("email"),
        phone: given("phone"),
        language: given("language"),
        notify: given("notify"),
        secondary_email: given("secondary_email"),
        secondary_phone: given("secondary_phone"),
    }
}

async fn edit(
    State(web): State<Arc<Web>>,
    Path(id): Path<String>,
    post: FormPost<Staff>,
) -> Response {
    let (p, f) = (post.who, post.fields);
    let unit = match field(&f, "unit") {
        Ok(u) => u,
        Err(e) => return bad_form("/residents", e),
    };
    let accessible = f.get("accessible").is_some_and(|v| v == "yes");
    let answer = web
        .app
        .register_resident(
            &p.actor(),
            &id,
            unit,
            accessible,
            RegisterMode::Update,
            contact_fields(&f, true),
        )
        .await;
    let saved = format!("Saved {id}");
    respond("/residents", answer, &saved, &[RejectCode::UnknownResident])
}

async fn deactivate(
    State(web): State<Arc<Web>>,
    Path(id): Path<String>,
    post: FormPost<Staff>,
) -> Response {
    let p = post.who;
    let request = Request::DeactivateResident {
        by: by(&p),
        resident: ResidentId(id.clone()),
    };
    run(
        &web,
        &p,
        "/residents",
        request,
        &format!("Deactivated {id}"),
    )
    .await
}

// --- the rent roll ----------------------------------------------------------------------------

/// Rows of a preview's lists shown on the page (the counts always cover them all).
const PREVIEW_ROWS: usize = 200;

/// The Residents page's rent-roll section: the last import, the rows waiting for review, and
/// the upload form.
fn roll_section(
    web: &Web,
    csrf: &str,
    reviews: &[locker_core::RollReviewItem],
    last: Option<&locker_core::RollImportView>,
) -> String {
    let settings = web.app.roll_settings();
    let last = match last {
        Some(l) => format!(
            "<p class=note data-last-import>Last import: {} by {} from {}: {} rows, {} created, {} updated, {} unchanged, {} for review, {} rejected, {} moved out.</p>",
            web.time(l.at),
            escape(&l.by),
            escape(&l.source),
            l.summary.rows,
            l.summary.created,
            l.summary.updated,
            l.summary.unchanged,
            l.summary.review,
            l.summary.rejected,
            l.summary.moved_out,
        ),
        None => "<p class=note data-last-import>No rent roll imported yet.</p>".to_owned(),
    };
    let review = if reviews.is_empty() {
        String::new()
    } else {
        let rows: String = reviews
            .iter()
            .map(|r| {
                let id = html::url(r.review.as_deref().unwrap_or(""));
                let button = |decision: &str, label: &str| {
                    format!(
                        "<form method=post action=\"/roll/review/{id}\" class=inline>{csrf}<input type=hidden name=decision value={decision}><button>{label}</button></form>"
                    )
                };
                format!(
                    "<tr data-review><td>{line}</td><td>{key}</td><td>{name}</td><td>{unit}</td><td>{email}</td><td>{candidate} ({cname}, unit {cunit})</td><td>{reason}</td><td>{same}{new}{dismiss}</td></tr>",
                    line = r.line,
                    key = escape(&r.key),
                    name = escape(&r.name),
                    unit = escape(&r.unit),
                    email = escape(r.email.as_deref().unwrap_or("")),
                    candidate = escape(r.candidate.as_str()),
                    cname = escape(r.candidate_name.as_deref().unwrap_or("no name")),
                    cunit = escape(&r.candidate_unit),
                    reason = escape(&r.reason),
                    same = button("same", "Same person: update them"),
                    new = button("new", "Someone else: add them"),
                    dismiss = button("dismiss", "Not now"),
                )
            })
            .collect();
        format!(
            "<h3>Rows waiting for review ({n})</h3><p class=note>These rows of the last import look like a resident the hub knows under another id.</p>\
             <table><tr><th>Line</th><th>Roll id</th><th>Name</th><th>Unit</th><th>Email</th><th>Looks like</th><th>Why</th><th>Decide</th></tr>{rows}</table>",
            n = reviews.len()
        )
    };
    let layouts: String = settings
        .layouts()
        .into_iter()
        .map(|l| {
            format!(
                "<option value={}{}>{}",
                l.key(),
                if l == settings.default {
                    " selected"
                } else {
                    ""
                },
                escape(l.label())
            )
        })
        .collect();
    let utf8 = settings.encoding() == locker_roll::Encoding::Utf8;
    format!(
        "<details class=roll{open}><summary><h2 style=display:inline>Rent roll</h2></summary>{last}{review}\
         <form method=post action=/roll enctype=multipart/form-data class=inline>{csrf}\
         <label>Export from <select name=layout>{layouts}</select></label>\
         <label>Encoding <select name=encoding><option value=utf-8{u}>UTF-8<option value=windows-1252{w}>Windows-1252 (Excel \"CSV\")</select></label>\
         <label>File (CSV) <input type=file name=file accept=\".csv,text/csv,text/plain\" required></label>\
         <button>Preview</button></form>\
         <p class=note>Nothing changes until you apply the preview. Residents the roll brought in and who leave it are moved out after the grace period; residents added by hand are never moved out by an import.</p></details>",
        open = if reviews.is_empty() { "" } else { " open" },
        u = if utf8 { " selected" } else { "" },
        w = if utf8 { "" } else { " selected" },
    )
}

/// `POST /roll`: read the file, show what importing it would do.
async fn preview(State(web): State<Arc<Web>>, post: FilePost<Staff>) -> Response {
    let (p, f) = (post.who, post.fields);
    let Some((file_name, bytes)) = post.file else {
        return bad_form("/residents", "choose the rent roll's file".into());
    };
    let layout = match crate::import::layout_named(&web, f.get("layout").map(String::as_str)) {
        Ok(l) => l,
        Err(m) => return bad_form("/residents", m),
    };
    let encoding = match f.get("encoding").map(String::as_str) {
        Some("windows-1252") => Some(locker_roll::Encoding::Windows1252),
        Some("utf-8") | None => None,
        Some(other) => return bad_form("/residents", format!("unknown encoding {other:?}")),
    };
    let who = p.actor();
    let (layout, roll) = match web.app.read_roll(&who, bytes, layout, encoding).await {
        Ok(r) => r,
        Err(locker_app::AppError::Rejected(r)) => {
            return bad_form("/residents", format!("{file_name}: {}", r.message))
        }
        Err(e) => return error_page("/residents", &e),
    };
    let file = locker_app::roll::FileReport::new(layout, &roll);
    let rows = roll.rows;
    let plan = match web.app.plan_roll(&who, rows.clone()).await {
        Ok(plan) => plan,
        Err(e) => return error_page("/residents", &e),
    };
    let source = if file_name.trim().is_empty() {
        "upload".to_owned()
    } else {
        file_name
            .chars()
            .filter(|c| !c.is_control())
            .take(200)
            .collect()
    };
    let token = web
        .imports
        .put(&who.name, source.clone(), rows, file.clone());
    let body = preview_body(&web, &html::csrf(&p), &token, &source, &file, &plan);
    Html(html::page(
        &p,
        "/residents",
        "Rent roll preview",
        &Default::default(),
        &body,
    ))
    .into_response()
}

fn preview_body(
    web: &Web,
    csrf: &str,
    token: &str,
    source: &str,
    file: &locker_app::roll::FileReport,
    plan: &locker_core::RollPlan,
) -> String {
    let s = plan.summary();
    let table = |title: &str, head: &str, rows: Vec<String>| -> String {
        if rows.is_empty() {
            return String::new();
        }
        let n = rows.len();
        let more = if n > PREVIEW_ROWS {
            format!("<p class=note>and {} more.</p>", n - PREVIEW_ROWS)
        } else {
            String::new()
        };
        let body: String = rows.into_iter().take(PREVIEW_ROWS).collect();
        format!("<h3>{title} ({n})</h3><table><tr>{head}</tr>{body}</table>{more}")
    };
    let change = |c: &locker_core::RollChange| {
        format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            c.line,
            escape(c.resident.as_str()),
            escape(&c.name),
            escape(&c.unit),
            escape(&c.changes.join(", "))
        )
    };
    let leaving = |l: &locker_core::RollLeaving| {
        format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(l.resident.as_str()),
            escape(&l.unit),
            l.since
                .map(|t| web.time(t))
                .unwrap_or_else(|| "this import".into()),
            web.time(l.moves_out_at),
            escape(
                &l.parcels
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    };
    let rejected = table(
        "Rejected rows",
        "<th>Line</th><th>Resident</th><th>Why</th>",
        plan.rejected
            .iter()
            .map(|r| {
                format!(
                    "<tr data-rejected><td>{}</td><td>{}</td><td>{}</td></tr>",
                    r.line,
                    escape(r.resident.as_deref().unwrap_or("")),
                    escape(&r.reason)
                )
            })
            .collect(),
    );
    let apply = if plan.rejected.is_empty() {
        format!(
            "<form method=post action=/roll/apply>{csrf}<input type=hidden name=token value=\"{t}\"><button>Apply these changes</button></form>",
            t = escape(token)
        )
    } else {
        format!(
            "<p class=err role=alert>{} row(s) are rejected: fix them in the property-management system and upload again, or apply without them (their residents are left as they are).</p>\
             <form method=post action=/roll/apply>{csrf}<input type=hidden name=token value=\"{t}\"><input type=hidden name=skip_rejected value=yes><button>Apply without the rejected rows</button></form>",
            plan.rejected.len(),
            t = escape(token)
        )
    };
    let found: String = file
        .columns
        .iter()
        .map(|(field, header)| format!("{} ← “{}”", escape(field), escape(header)))
        .collect::<Vec<_>>()
        .join("; ");
    let stopped = file
        .stopped_at
        .as_ref()
        .map(|s| {
            format!(
                " Summary blocks were skipped, the first at line {} ({}).",
                s.line,
                escape(&s.reason)
            )
        })
        .unwrap_or_default();
    format!(
        "<p data-summary>{source}: {rows} rows read as {layout} (header on line {hl}, “{d}” between columns). \
         {c} to create, {u} to update, {un} unchanged, {past} already moved out, {r} for review, {rj} rejected, {lv} leaving the roll, {mo} to move out.</p>\
         <p class=note>Columns: {found}.{stopped}</p>{apply}{rejected}{create}{update}{review}{leave}{moveout}{skipped}\
         <p><a href=/residents>Back to the residents, changing nothing</a></p>",
        source = escape(source),
        rows = s.rows,
        layout = escape(file.layout),
        hl = file.header_line,
        d = escape(&match file.delimiter {
            '\t' => "tab".to_owned(),
            c => c.to_string(),
        }),
        c = s.created,
        u = s.updated,
        un = s.unchanged,
        past = plan.past,
        r = s.review,
        rj = s.rejected,
        lv = s.leaving,
        mo = s.moved_out,
        create = table(
            "New residents",
            "<th>Line</th><th>Id</th><th>Name</th><th>Unit</th><th></th>",
            plan.create.iter().map(change).collect()
        ),
        update = table(
            "Changes",
            "<th>Line</th><th>Resident</th><th>Name</th><th>Unit</th><th>What changes</th>",
            plan.update.iter().map(change).collect()
        ),
        review = table(
            "For review after the import",
            "<th>Line</th><th>Roll id</th><th>Name</th><th>Looks like</th><th>Why</th>",
            plan.review
                .iter()
                .map(|r| format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    r.line,
                    escape(&r.key),
                    escape(&r.name),
                    escape(r.candidate.as_str()),
                    escape(&r.reason)
                ))
                .collect()
        ),
        leave = table(
            "Leaving the roll (moved out after the grace period)",
            "<th>Resident</th><th>Unit</th><th>Off the roll since</th><th>Moved out at the first import after</th><th>Parcels waiting</th>",
            plan.leaving.iter().map(leaving).collect()
        ),
        moveout = table(
            "Moved out by this import",
            "<th>Resident</th><th>Unit</th><th>Off the roll since</th><th>Grace period ended</th><th>Parcels waiting (flagged for staff)</th>",
            plan.move_out.iter().map(leaving).collect()
        ),
        skipped = table(
            "Rows that are not residents (skipped)",
            "<th>Line</th><th>Why</th>",
            file.skipped
                .iter()
                .map(|s| format!("<tr><td>{}</td><td>{}</td></tr>", s.line, escape(&s.reason)))
                .collect()
        ),
    )
}

/// `POST /roll/apply`: apply a preview (as the core finds things now).
async fn apply(State(web): State<Arc<Web>>, post: FormPost<Staff>) -> Response {
    let (p, f) = (post.who, post.fields);
    let token = match field(&f, "token") {
        Ok(t) => t,
        Err(e) => return bad_form("/residents", e),
    };
    let who = p.actor();
    let staged = match web.imports.take(token, &who.name) {
        Ok(s) => s,
        Err(locker_app::AppError::Rejected(r)) => return bad_form("/residents", r.message),
        Err(e) => return error_page("/residents", &e),
    };
    let skip = f.get("skip_rejected").is_some_and(|v| v == "yes");
    match web
        .app
        .import_roll(&who, &staged.source, staged.rows, skip)
        .await
    {
        Ok((plan, _)) => {
            let s = plan.summary();
            super::back(
                "/residents",
                Ok(format!(
                    "Imported {}: {} created, {} updated, {} unchanged, {} for review, {} rejected rows left out, {} leaving the roll, {} moved out",
                    staged.source, s.created, s.updated, s.unchanged, s.review, s.rejected, s.leaving, s.moved_out
                )),
            )
        }
        Err(locker_app::AppError::Rejected(r)) => bad_form("/residents", r.message),
        Err(e) => error_page("/residents", &e),
    }
}

/// `POST /roll/review/{id}`: staff's decision on a row that partly matched.
async fn resolve_review(
    State(web): State<Arc<Web>>,
    Path(id): Path<String>,
    post: FormPost<Staff>,
) -> Response {
    let (p, f) = (post.who, post.fields);
    let decision = match f.get("decision").map(String::as_str) {
        Some("same") => locker_core::ReviewDecision::Same,
        Some("new") => locker_core::ReviewDecision::New,
        Some("dismiss") => locker_core::ReviewDecision::Dismiss,
        _ => return bad_form("/residents", "decision is same, new or dismiss".into()),
    };
    let request = Request::ResolveRollReview {
        by: by(&p),
        review: id,
        decision,
    };
    let done = match decision {
        locker_core::ReviewDecision::Same => "Updated the resident from the roll's row",
        locker_core::ReviewDecision::New => "Added the roll's row as a new resident",
        locker_core::ReviewDecision::Dismiss => "Left the row for the next import",
    };
    run(&web, &p, "/residents", request, done).await
}
