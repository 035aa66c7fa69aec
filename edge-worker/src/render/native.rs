//! The handlers on the `lol_html` crate, push-style: the native backend for the unit
//! tests and the rewrite benchmark (the Worker uses the runtime's `HTMLRewriter`, the
//! same engine, see [`super::workers`]).

use std::borrow::Cow;
use std::cell::RefCell;
use std::rc::Rc;

use lol_html::html_content::{ContentType, Element};
use lol_html::{DocumentContentHandlers, ElementContentHandlers, HtmlRewriter, Selector, Settings};
use samplit_engine::changes::InsertPosition;

use super::{PageElement, Plan, RenderError, Skipped, handlers};

struct LolElement<'a, 'r, 't>(&'a mut Element<'r, 't>);

fn content_type(html: bool) -> ContentType {
    if html {
        ContentType::Html
    } else {
        ContentType::Text
    }
}

impl PageElement for LolElement<'_, '_, '_> {
    fn tag_name(&self) -> String {
        self.0.tag_name()
    }
    fn attribute(&self, name: &str) -> Option<String> {
        self.0.get_attribute(name)
    }
    fn set_attribute(&mut self, name: &str, value: &str) -> Result<(), String> {
        self.0.set_attribute(name, value).map_err(|e| e.to_string())
    }
    fn remove_attribute(&mut self, name: &str) {
        self.0.remove_attribute(name);
    }
    fn set_content(&mut self, content: &str, html: bool) {
        self.0.set_inner_content(content, content_type(html));
    }
    fn insert(&mut self, at: InsertPosition, content: &str, html: bool) {
        let ct = content_type(html);
        match at {
            InsertPosition::Before => self.0.before(content, ct),
            InsertPosition::After => self.0.after(content, ct),
            InsertPosition::Prepend => self.0.prepend(content, ct),
            InsertPosition::Append => self.0.append(content, ct),
        }
    }
    fn remove(&mut self) {
        self.0.remove();
    }
}

type Sink = Box<dyn FnMut(&[u8])>;

/// A push-style streaming rewriter.
pub struct Rewriter {
    inner: HtmlRewriter<'static, Sink>,
    out: Rc<RefCell<Vec<u8>>>,
    skipped: Vec<Skipped>,
}

impl Rewriter {
    /// A rewriter for `plan`. Changes whose selector `lol_html` cannot compile are
    /// skipped (see [`Rewriter::skipped`]); the others are applied.
    pub fn new(plan: &Plan) -> Result<Self, RenderError> {
        let out = Rc::new(RefCell::new(Vec::with_capacity(16 * 1024)));
        let mut settings = Settings::new();
        let mut skipped = Vec::new();
        let all = handlers(plan);
        for h in all.elements {
            let selector: Selector = match h.selector.parse() {
                Ok(s) => s,
                Err(e) if h.from_change => {
                    skipped.push(Skipped {
                        selector: h.selector,
                        reason: e.to_string(),
                    });
                    continue;
                }
                Err(e) => return Err(RenderError(format!("{}: {e}", h.selector))),
            };
            let mut f = h.on_element;
            settings = settings.append_element_content_handler((
                Cow::Owned(selector),
                ElementContentHandlers::default().element(
                    move |el: &mut Element<'_, '_>| -> lol_html::HandlerResult {
                        f(&mut LolElement(el)).map_err(Into::into)
                    },
                ),
            ));
        }
        if let Some(script) = all.end_html {
            settings =
                settings.append_document_content_handler(DocumentContentHandlers::default().end(
                    move |end: &mut lol_html::html_content::DocumentEnd<'_>| {
                        end.append(&script, ContentType::Html);
                        Ok(())
                    },
                ));
        }
        let sink_buf = Rc::clone(&out);
        let sink: Sink =
            Box::new(move |chunk: &[u8]| sink_buf.borrow_mut().extend_from_slice(chunk));
        Ok(Self {
            inner: HtmlRewriter::new(settings, sink),
            out,
            skipped,
        })
    }

    /// Changes that were not applied.
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.out.borrow_mut())
    }

    /// Feeds a chunk; returns the output ready so far (possibly empty).
    pub fn write(&mut self, chunk: &[u8]) -> Result<Vec<u8>, RenderError> {
        self.inner
            .write(chunk)
            .map_err(|e| RenderError(e.to_string()))?;
        Ok(self.take())
    }

    /// Ends the document; returns the remaining output.
    pub fn end(self) -> Result<Vec<u8>, RenderError> {
        let out = Rc::clone(&self.out);
        self.inner.end().map_err(|e| RenderError(e.to_string()))?;
        Ok(std::mem::take(&mut *out.borrow_mut()))
    }
}

/// Rewrites a whole document (tests, benchmark). `chunk` splits the input, to exercise
/// streaming across chunk boundaries.
pub fn rewrite_str(plan: &Plan, html: &str, chunk: usize) -> Result<String, RenderError> {
    let mut r = Rewriter::new(plan)?;
    let mut out = Vec::with_capacity(html.len() + 1024);
    for piece in html.as_bytes().chunks(chunk.max(1)) {
        out.extend(r.write(piece)?);
    }
    out.extend(r.end()?);
    String::from_utf8(out).map_err(|e| RenderError(e.to_string()))
}
