//! The words of each message: one template per message kind and language, with the blocks
//! `subject`, `text` and `html`, in MiniJinja (Jinja2's syntax, by the author of Jinja2; small,
//! no dependencies beyond serde, and its errors name the template and line). The defaults, in
//! English and Spanish, are built in (`hub/deliver/templates/`); a property overrides any of
//! them with a file of the same name (`delivered.es.j2`) in `notify.templates`.
//!
//! Each template is compiled twice: the `html` block renders with HTML escaping, `subject` and
//! `text` without (a `&` in a unit name stays a `&` in the plain text).

use std::path::Path;

use minijinja::{AutoEscape, Environment};
use serde::Serialize;

/// The message kinds, as template names spell them.
pub const KINDS: [&str; 8] = [
    "delivered",
    "reminder",
    "expiring",
    "expired",
    "at_desk",
    "withdrawn",
    "picked_up",
    CARRIER_CODE,
];

/// The one message to a carrier rather than a resident: its variables are [`CarrierCodeContext`].
pub const CARRIER_CODE: &str = "carrier_code";

/// The blocks every template has.
const BLOCKS: [&str; 3] = ["subject", "text", "html"];

const BUILT_IN: [(&str, &str); 16] = [
    (
        "carrier_code.en.j2",
        include_str!("../templates/carrier_code.en.j2"),
    ),
    (
        "carrier_code.es.j2",
        include_str!("../templates/carrier_code.es.j2"),
    ),
    (
        "delivered.en.j2",
        include_str!("../templates/delivered.en.j2"),
    ),
    (
        "delivered.es.j2",
        include_str!("../templates/delivered.es.j2"),
    ),
    (
        "reminder.en.j2",
        include_str!("../templates/reminder.en.j2"),
    ),
    (
        "reminder.es.j2",
        include_str!("../templates/reminder.es.j2"),
    ),
    (
        "expiring.en.j2",
        include_str!("../templates/expiring.en.j2"),
    ),
    (
        "expiring.es.j2",
        include_str!("../templates/expiring.es.j2"),
    ),
    ("expired.en.j2", include_str!("../templates/expired.en.j2")),
    ("expired.es.j2", include_str!("../templates/expired.es.j2")),
    (
        "picked_up.en.j2",
        include_str!("../templates/picked_up.en.j2"),
    ),
    (
        "picked_up.es.j2",
        include_str!("../templates/picked_up.es.j2"),
    ),
    ("at_desk.en.j2", include_str!("../templates/at_desk.en.j2")),
    ("at_desk.es.j2", include_str!("../templates/at_desk.es.j2")),
    (
        "withdrawn.en.j2",
        include_str!("../templates/withdrawn.en.j2"),
    ),
    (
        "withdrawn.es.j2",
        include_str!("../templates/withdrawn.es.j2"),
    ),
];

/// A template that cannot be used: which file, which line, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// What a template is given.
#[derive(Debug, Clone, Serialize)]
pub struct Context<'a> {
    pub site: &'a str,
    pub resident: ResidentContext<'a>,
    pub parcels: Vec<&'a str>,
    pub pin: Option<&'a str>,
    /// The QR code is attached (`cid:qr`).
    pub qr: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ResidentContext<'a> {
    pub id: &'a str,
    pub unit: &'a str,
}

/// What a `carrier_code` template is given.
#[derive(Debug, Clone, Serialize)]
pub struct CarrierCodeContext<'a> {
    pub site: &'a str,
    pub carrier: CarrierContext<'a>,
    pub code: &'a str,
    /// How staff name the code to revoke it.
    pub code_ref: &'a str,
}

#[derive(Debug, Clone, Serialize)]
pub struct CarrierContext<'a> {
    pub id: &'a str,
    pub name: &'a str,
}

/// One message's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Words {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The compiled templates.
pub struct Templates {
    text: Environment<'static>,
    html: Environment<'static>,
}

impl Templates {
    /// The built-in templates, overridden by the files in `dir` (if given). Every problem is
    /// reported, each with its file and line; nothing is half-loaded.
    pub fn load(dir: Option<&Path>) -> Result<Templates, Vec<Problem>> {
        let mut sources: Vec<(String, String, String)> = BUILT_IN
            .iter()
            .map(|(name, src)| {
                (
                    (*name).to_owned(),
                    format!("(built in) {name}"),
                    (*src).to_owned(),
                )
            })
            .collect();
        let mut problems = Vec::new();
        if let Some(dir) = dir {
            let entries = match std::fs::read_dir(dir) {
                Ok(e) => e,
                Err(e) => {
                    return Err(vec![Problem {
                        file: dir.display().to_string(),
                        line: None,
                        message: format!("cannot read the templates directory: {e}"),
                    }])
                }
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned)
                else {
                    continue;
                };
                if !name.ends_with(".j2") {
                    continue;
                }
                let Some(slot) = sources.iter_mut().find(|(n, _, _)| *n == name) else {
                    problems.push(Problem {
                        file: path.display().to_string(),
                        line: None,
                        message: format!(
                            "not a message template: the names are KIND.LANGUAGE.j2 with KIND one \
                             of {} and LANGUAGE one of {}",
                            KINDS.join(", "),
                            locker_core::LANGUAGES.join(", ")
                        ),
                    });
                    continue;
                };
                match std::fs::read_to_string(&path) {
                    Ok(src) => *slot = (name, path.display().to_string(), src),
                    Err(e) => problems.push(Problem {
                        file: path.display().to_string(),
                        line: None,
                        message: format!("cannot read it: {e}"),
                    }),
                }
            }
        }
        let mut text = Environment::new();
        text.set_auto_escape_callback(|_| AutoEscape::None);
        text.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        let mut html = Environment::new();
        html.set_auto_escape_callback(|_| AutoEscape::Html);
        html.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        let sample = Context {
            site: "maple-court",
            resident: ResidentContext {
                id: "r-101",
                unit: "101",
            },
            parcels: vec!["p-1", "p-2"],
            pin: Some("048202"),
            qr: true,
        };
        let carrier_sample = CarrierCodeContext {
            site: "maple-court",
            carrier: CarrierContext {
                id: "ups",
                name: "UPS",
            },
            code: "48201937",
            code_ref: "hub-a-0000000001",
        };
        for (name, file, src) in sources {
            let problem = |e: minijinja::Error| Problem {
                file: file.clone(),
                line: e.line(),
                message: match e.detail() {
                    Some(d) => format!("{}: {d}", e.kind()),
                    None => e.kind().to_string(),
                },
            };
            let mut ok = true;
            for env in [&mut text, &mut html] {
                if let Err(e) = env.add_template_owned(name.clone(), src.clone()) {
                    problems.push(problem(e));
                    ok = false;
                    break;
                }
            }
            if !ok {
                continue;
            }
            // Render every block once with a sample, so a missing block or an unknown variable
            // is found now, not at the first delivery.
            let carrier = name.starts_with(&format!("{CARRIER_CODE}."));
            for (env, block) in [(&text, "subject"), (&text, "text"), (&html, "html")] {
                let rendered = if carrier {
                    render_block(env, &name, &carrier_sample, block)
                } else {
                    render_block(env, &name, &sample, block)
                };
                if let Err(e) = rendered {
                    let mut p = problem(e);
                    if p.message.contains("block") || !BLOCKS.contains(&block) {
                        p.message = format!("block `{block}`: {}", p.message);
                    }
                    problems.push(p);
                }
            }
        }
        if problems.is_empty() {
            Ok(Templates { text, html })
        } else {
            Err(problems)
        }
    }

    /// The words of message `kind` in `language` (English when there is none in that language).
    pub fn render<C: Serialize>(
        &self,
        kind: &str,
        language: &str,
        ctx: &C,
    ) -> Result<Words, String> {
        let lang = if locker_core::LANGUAGES.contains(&language) {
            language
        } else {
            "en"
        };
        let name = format!("{kind}.{lang}.j2");
        let block = |env: &Environment<'static>, block: &str| -> Result<String, String> {
            render_block(env, &name, ctx, block).map_err(|e| format!("template {name}: {e}"))
        };
        Ok(Words {
            subject: block(&self.text, "subject")?.trim().to_owned(),
            text: block(&self.text, "text")?,
            html: format!(
                "<!doctype html><html><body>{}</body></html>",
                block(&self.html, "html")?
            ),
        })
    }
}

/// One block of template `name`, rendered with `ctx`.
fn render_block<C: Serialize>(
    env: &Environment<'static>,
    name: &str,
    ctx: &C,
    block: &str,
) -> Result<String, minijinja::Error> {
    let mut captured = env.get_template(name)?.render_captured(ctx)?;
    captured.with_state_mut(|state| state.render_block(block))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx<'a>(unit: &'a str) -> Context<'a> {
        Context {
            site: "maple-court",
            resident: ResidentContext { id: "r-1", unit },
            parcels: vec!["p-1"],
            pin: Some("123456"),
            qr: true,
        }
    }

    #[test]
    fn the_built_in_templates_load_and_escape_only_the_html() {
        let t = Templates::load(None).expect("the built-in templates");
        let w = t.render("delivered", "es", &ctx("A&B")).expect("renders");
        assert_eq!(w.subject, "Su paquete está en los casilleros");
        assert!(w.text.contains("Su código (PIN): 123456"), "{}", w.text);
        assert!(w.html.contains("cid:qr"));
        // An unknown language falls back to English.
        let w = t.render("reminder", "fr", &ctx("1")).expect("renders");
        assert_eq!(w.subject, "Reminder: your parcel is waiting");
    }

    #[test]
    fn a_carriers_code_message_names_the_carrier_and_its_code_and_nothing_of_a_resident() {
        let t = Templates::load(None).expect("the built-in templates");
        let ctx = CarrierCodeContext {
            site: "maple-court",
            carrier: CarrierContext {
                id: "ups",
                name: "UPS & Co",
            },
            code: "48201937",
            code_ref: "hub-a-1",
        };
        let w = t.render(CARRIER_CODE, "en", &ctx).expect("renders");
        assert_eq!(w.subject, "New locker access code for UPS & Co");
        assert!(w.text.contains("\n48201937\n"), "{}", w.text);
        assert!(w.html.contains("<b>48201937</b>") && w.html.contains("UPS &amp; Co"));
        let es = t.render(CARRIER_CODE, "es", &ctx).expect("renders");
        assert!(es.subject.starts_with("Nuevo código"), "{}", es.subject);
        // A property's carrier template that asks for a resident is refused at load.
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("carrier_code.en.j2"),
            "{% block subject %}{{ resident.unit }}{% endblock %}{% block text %}{{ code }}{% endblock %}{% block html %}x{% endblock %}",
        )
        .expect("write");
        let problems = Templates::load(Some(dir.path())).err().expect("refused");
        assert!(problems
            .iter()
            .any(|p| p.file.ends_with("carrier_code.en.j2")));
    }

    #[test]
    fn a_propertys_file_overrides_and_a_bad_one_is_reported_with_its_file_and_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("delivered.en.j2"),
            "{% block subject %}Parcel for unit {{ resident.unit }}{% endblock %}\
             {% block text %}PIN {{ pin }}{% endblock %}{% block html %}<b>{{ resident.unit }}</b>{% endblock %}",
        )
        .expect("write");
        let t = Templates::load(Some(dir.path())).expect("loads");
        let w = t.render("delivered", "en", &ctx("A&B")).expect("renders");
        assert_eq!(
            w.subject, "Parcel for unit A&B",
            "no escaping in the subject"
        );
        assert!(w.html.contains("<b>A&amp;B</b>"), "{}", w.html);

        std::fs::write(
            dir.path().join("reminder.es.j2"),
            "{% block subject %}ok{% endblock %}\n{% block text %}\n{{ pin }\n{% endblock %}",
        )
        .expect("write");
        std::fs::write(dir.path().join("delivred.en.j2"), "x").expect("write");
        let problems = Templates::load(Some(dir.path())).err().expect("refused");
        let syntax = problems
            .iter()
            .find(|p| p.file.ends_with("reminder.es.j2"))
            .expect("the syntax error is reported");
        assert_eq!(syntax.line, Some(3), "{syntax}");
        assert!(problems
            .iter()
            .any(|p| p.file.ends_with("delivred.en.j2")
                && p.message.contains("not a message template")));
    }

    #[test]
    fn a_template_without_a_block_or_with_an_unknown_variable_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("expired.en.j2"),
            "{% block subject %}{{ resident.name }}{% endblock %}{% block text %}x{% endblock %}",
        )
        .expect("write");
        let problems = Templates::load(Some(dir.path())).err().expect("refused");
        assert!(
            problems.iter().any(|p| p.file.ends_with("expired.en.j2")),
            "{problems:?}"
        );
        assert!(
            problems.len() >= 2,
            "the unknown variable and the missing html block: {problems:?}"
        );
    }
}
