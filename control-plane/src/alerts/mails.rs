//! The mail of an alert: plain text and HTML, in the recipient's language (`users.
//! language`), from the askama templates `templates/mail/alerts/alert.{en,es}.{txt,html}`
//! (the words are in the templates; this module gives them the figures, formatted for
//! the language). Each links to the experiment's results (or the site, for publication
//! alerts) and to `/notifications`, where the person changes what they receive. No link
//! token: the console asks them to log in.

use askama::Template;
use uuid::Uuid;

use super::conditions::{self, Finding};
use super::{AlertEvent, AlertKind};
use crate::config::Config;
use crate::db::alerts::Recipient;
use crate::mail::{self, Language, Outgoing};

/// One arm's line in an SRM mail.
pub struct SrmLine {
    pub name: String,
    pub visitors: u64,
    pub expected: String,
}

/// One harmed arm's line in a guardrail mail.
pub struct HarmLine {
    pub arm: String,
    pub goal: String,
    pub lift: String,
    /// The loss the guardrail tolerates ("5 %"; "—" when unknown).
    pub margin: String,
    pub p: String,
}

/// What the templates show.
pub struct View {
    pub lang: &'static str,
    pub subject: String,
    pub kind: &'static str,
    pub experiment: String,
    pub site: String,
    pub element: Option<String>,
    // winner
    pub arm: String,
    pub goal: String,
    pub lift: String,
    pub p: String,
    pub chance: String,
    // srm
    pub srm_p: String,
    pub arms: Vec<SrmLine>,
    // guardrail_harmed
    pub harmed: Vec<HarmLine>,
    // publish_failing
    pub failures: i64,
    pub last_error: Option<String>,
    /// The results page (or the site's page).
    pub link: String,
    /// Where to change what one receives.
    pub preferences: String,
}

#[derive(Template)]
#[template(path = "mail/alerts/alert.en.txt")]
struct EnText<'a> {
    v: &'a View,
}

#[derive(Template)]
#[template(path = "mail/alerts/alert.en.html")]
struct EnHtml<'a> {
    v: &'a View,
}

#[derive(Template)]
#[template(path = "mail/alerts/alert.es.txt")]
struct EsText<'a> {
    v: &'a View,
}

#[derive(Template)]
#[template(path = "mail/alerts/alert.es.html")]
struct EsHtml<'a> {
    v: &'a View,
}

/// A decimal figure written for `lang` (Spanish uses a decimal comma).
fn local(text: String, lang: Language) -> String {
    match lang {
        Language::En => text,
        Language::Es => text.replace('.', ","),
    }
}

/// The subject line.
pub fn subject(kind: AlertKind, lang: Language, experiment: &str, site: &str) -> String {
    match (kind, lang) {
        (AlertKind::Winner, Language::En) => format!("[Samplit] Winner: {experiment}"),
        (AlertKind::Winner, Language::Es) => format!("[Samplit] Ganador: {experiment}"),
        (AlertKind::Srm, Language::En) => format!("[Samplit] Sample ratio mismatch: {experiment}"),
        (AlertKind::Srm, Language::Es) => {
            format!("[Samplit] Desajuste del reparto de visitantes: {experiment}")
        }
        (AlertKind::GuardrailHarmed, Language::En) => {
            format!("[Samplit] Guardrail harmed: {experiment}")
        }
        (AlertKind::GuardrailHarmed, Language::Es) => {
            format!("[Samplit] Métrica de control perjudicada: {experiment}")
        }
        (AlertKind::PublishFailing, Language::En) => {
            format!("[Samplit] Publishing is failing: {site}")
        }
        (AlertKind::PublishFailing, Language::Es) => {
            format!("[Samplit] La publicación está fallando: {site}")
        }
    }
}

/// The templates' view of an alert for one language.
pub fn view(config: &Config, event: &AlertEvent, finding: &Finding, lang: Language) -> View {
    let experiment = event
        .experiment
        .clone()
        .unwrap_or((Uuid::nil(), String::new()));
    let site = event.site.clone().unwrap_or((Uuid::nil(), String::new()));
    let pct = |x: Option<f64>| local(x.map_or_else(|| "—".to_owned(), conditions::percent), lang);
    let p = |x: f64| local(conditions::p_value(x), lang);
    let link = match event.kind {
        AlertKind::PublishFailing => mail::console_url(config, &format!("/sites/{}", site.0)),
        _ => mail::console_url(config, &format!("/experiments/{}/results", experiment.0)),
    };
    let mut v = View {
        lang: lang.as_str(),
        subject: subject(event.kind, lang, &experiment.1, &site.1),
        kind: event.kind.as_str(),
        experiment: experiment.1,
        site: site.1,
        element: None,
        arm: String::new(),
        goal: String::new(),
        lift: String::new(),
        p: String::new(),
        chance: String::new(),
        srm_p: String::new(),
        arms: Vec::new(),
        harmed: Vec::new(),
        failures: 0,
        last_error: None,
        link,
        preferences: mail::console_url(config, "/notifications"),
    };
    match finding {
        Finding::Winner { winner, element } => {
            v.element = element.clone();
            v.arm = winner.arm.name.clone();
            v.goal = winner.goal.name.clone();
            v.lift = pct(winner.lift);
            v.p = p(winner.p_value);
            // "100.0 %" would overstate it: the chance is never certain.
            v.chance = if winner.chance_to_be_best > 0.999 {
                local("> 99.9 %".to_owned(), lang)
            } else {
                local(format!("{:.1} %", winner.chance_to_be_best * 100.0), lang)
            };
        }
        Finding::Srm { srm_p_value, arms } => {
            v.srm_p = p(*srm_p_value);
            v.arms = arms
                .iter()
                .map(|a| SrmLine {
                    name: a.arm.name.clone(),
                    visitors: a.visitors,
                    expected: local(format!("{:.1} %", a.expected_share * 100.0), lang),
                })
                .collect();
        }
        Finding::GuardrailHarmed { harmed } => {
            v.harmed = harmed
                .iter()
                .map(|h| HarmLine {
                    arm: h.arm.name.clone(),
                    goal: h.goal.name.clone(),
                    lift: pct(h.lift),
                    margin: h.guardrail.as_ref().map_or_else(
                        || "—".to_owned(),
                        |g| local(format!("{:.1} %", g.margin * 100.0), lang),
                    ),
                    p: p(h.p_value),
                })
                .collect();
        }
        Finding::PublishFailing {
            failures,
            last_error,
            ..
        } => {
            v.failures = *failures;
            v.last_error = last_error.clone();
        }
    }
    v
}

/// The mail of `event` for `to`, activation `n` of the alert (its dedupe key
/// `alert:<subject>:<kind>:<n>:<user>` makes a retried pass enqueue it once).
pub fn render(
    config: &Config,
    event: &AlertEvent,
    finding: &Finding,
    n: i32,
    to: &Recipient,
) -> anyhow::Result<Outgoing> {
    let lang = Language::from_code(&to.language);
    let v = view(config, event, finding, lang);
    let (text, html) = match lang {
        Language::En => (EnText { v: &v }.render()?, EnHtml { v: &v }.render()?),
        Language::Es => (EsText { v: &v }.render()?, EsHtml { v: &v }.render()?),
    };
    let subject_id = event
        .experiment
        .as_ref()
        .or(event.site.as_ref())
        .map_or(Uuid::nil(), |s| s.0);
    Ok(Outgoing {
        dedupe_key: format!(
            "alert:{subject_id}:{}:{n}:{}",
            event.kind.as_str(),
            to.user_id
        ),
        to: to.email.clone(),
        subject: v.subject,
        text,
        html,
        link: None,
    })
}
