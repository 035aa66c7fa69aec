//! The handlers on the Workers runtime's `HTMLRewriter` (`lol_html`, compiled natively
//! into workerd): the backend the Worker runs. Bindings are declared here with
//! `wasm-bindgen` because workers-rs 0.8 has none.
//!
//! Each handler is a `Closure` handed to JS with `into_js_value`: the runtime calls it
//! while the body streams, after the fetch handler has returned, so its lifetime belongs
//! to the JS side. wasm-bindgen frees its Rust memory through a `FinalizationRegistry`
//! once the runtime collects it (`enable_weak_ref`, the default for compatibility dates
//! from 2025-05-05; ours is 2026-04-01).

use samplit_engine::changes::InsertPosition;
use wasm_bindgen::prelude::*;
use worker::Response;

use super::{PageElement, Plan, RenderError, Skipped, handlers};

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = HTMLRewriter)]
    type JsRewriter;
    #[wasm_bindgen(constructor, js_class = "HTMLRewriter")]
    fn new() -> JsRewriter;
    #[wasm_bindgen(method, catch, js_class = "HTMLRewriter")]
    fn on(this: &JsRewriter, selector: &str, handlers: &js_sys::Object) -> Result<(), JsValue>;
    #[wasm_bindgen(method, catch, js_class = "HTMLRewriter", js_name = onDocument)]
    fn on_document(this: &JsRewriter, handlers: &js_sys::Object) -> Result<(), JsValue>;
    #[wasm_bindgen(method, catch, js_class = "HTMLRewriter")]
    fn transform(
        this: &JsRewriter,
        response: &worker::web_sys::Response,
    ) -> Result<worker::web_sys::Response, JsValue>;

    type JsElement;
    #[wasm_bindgen(method, getter = tagName)]
    fn js_tag_name(this: &JsElement) -> String;
    #[wasm_bindgen(method, js_name = getAttribute)]
    fn get_attribute(this: &JsElement, name: &str) -> Option<String>;
    #[wasm_bindgen(method, catch, js_name = setAttribute)]
    fn set_attribute(this: &JsElement, name: &str, value: &str) -> Result<(), JsValue>;
    #[wasm_bindgen(method, js_name = removeAttribute)]
    fn remove_attribute(this: &JsElement, name: &str);
    #[wasm_bindgen(method, js_name = setInnerContent)]
    fn set_inner_content(this: &JsElement, content: &str, options: &JsValue);
    #[wasm_bindgen(method)]
    fn before(this: &JsElement, content: &str, options: &JsValue);
    #[wasm_bindgen(method)]
    fn after(this: &JsElement, content: &str, options: &JsValue);
    #[wasm_bindgen(method)]
    fn prepend(this: &JsElement, content: &str, options: &JsValue);
    #[wasm_bindgen(method)]
    fn append(this: &JsElement, content: &str, options: &JsValue);
    #[wasm_bindgen(method)]
    fn remove(this: &JsElement);

    type JsDocumentEnd;
    #[wasm_bindgen(method, js_name = append)]
    fn append_end(this: &JsDocumentEnd, content: &str, options: &JsValue);
}

thread_local! {
    /// `[{html: false}, {html: true}]`, the content options every insertion takes, built
    /// once per isolate (the runtime only reads them).
    static OPTIONS: [JsValue; 2] = [false, true].map(|html| {
        let o = js_sys::Object::new();
        // Setting a plain property on a fresh object cannot fail.
        let _ = js_sys::Reflect::set(&o, &JsValue::from_str("html"), &JsValue::from_bool(html));
        o.into()
    });
}

/// Runs `f` with `{html: <html>}`.
fn with_options<R>(html: bool, f: impl FnOnce(&JsValue) -> R) -> R {
    OPTIONS.with(|o| f(&o[usize::from(html)]))
}

fn message(e: &JsValue) -> String {
    e.as_string()
        .or_else(|| {
            e.dyn_ref::<js_sys::Error>()
                .map(|e| String::from(e.message()))
        })
        .unwrap_or_else(|| "unknown error".to_owned())
}

impl PageElement for JsElement {
    fn tag_name(&self) -> String {
        self.js_tag_name()
    }
    fn attribute(&self, name: &str) -> Option<String> {
        self.get_attribute(name)
    }
    fn set_attribute(&mut self, name: &str, value: &str) -> Result<(), String> {
        JsElement::set_attribute(self, name, value).map_err(|e| message(&e))
    }
    fn remove_attribute(&mut self, name: &str) {
        JsElement::remove_attribute(self, name);
    }
    fn set_content(&mut self, content: &str, html: bool) {
        with_options(html, |o| self.set_inner_content(content, o));
    }
    fn insert(&mut self, at: InsertPosition, content: &str, html: bool) {
        with_options(html, |o| match at {
            InsertPosition::Before => self.before(content, o),
            InsertPosition::After => self.after(content, o),
            InsertPosition::Prepend => self.prepend(content, o),
            InsertPosition::Append => JsElement::append(self, content, o),
        });
    }
    fn remove(&mut self) {
        JsElement::remove(self);
    }
}

fn handler_object(name: &str, f: JsValue) -> Result<js_sys::Object, RenderError> {
    let o = js_sys::Object::new();
    js_sys::Reflect::set(&o, &JsValue::from_str(name), &f).map_err(|e| RenderError(message(&e)))?;
    Ok(o)
}

/// Streams `response` through `HTMLRewriter` running `plan`; returns the rewritten
/// response (same status and headers). Changes whose selector the runtime refuses are
/// skipped and logged under `label`.
pub fn transform(plan: &Plan, response: Response, label: &str) -> Result<Response, RenderError> {
    let rewriter = JsRewriter::new();
    let mut skipped = Vec::new();
    let all = handlers(plan);
    for h in all.elements {
        let mut f = h.on_element;
        let closure = Closure::<dyn FnMut(JsElement) -> Result<(), JsValue>>::new(
            move |mut el: JsElement| f(&mut el).map_err(|e| JsValue::from(js_sys::Error::new(&e))),
        );
        let object = handler_object("element", closure.into_js_value())?;
        if let Err(e) = rewriter.on(&h.selector, &object) {
            if h.from_change {
                skipped.push(Skipped {
                    selector: h.selector,
                    reason: message(&e),
                });
            } else {
                return Err(RenderError(format!("{}: {}", h.selector, message(&e))));
            }
        }
    }
    if let Some(script) = all.end_html {
        let closure = Closure::<dyn FnMut(JsDocumentEnd)>::new(move |end: JsDocumentEnd| {
            with_options(true, |o| end.append_end(&script, o));
        });
        let object = handler_object("end", closure.into_js_value())?;
        rewriter
            .on_document(&object)
            .map_err(|e| RenderError(message(&e)))?;
    }
    let raw = worker::web_sys::Response::from(response);
    let out = rewriter
        .transform(&raw)
        .map_err(|e| RenderError(message(&e)))?;
    for s in skipped {
        worker::console_warn!("{label}: change on {:?} skipped: {}", s.selector, s.reason);
    }
    Ok(Response::from(out))
}
