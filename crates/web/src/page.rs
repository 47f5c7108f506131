//! The one message page (errors, refusals, notices) every service renders.

use crate::assets::{Frame, render};
use crate::i18n::Texts;
use askama::Template;
use axum::http::StatusCode;
use axum::response::Response;

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage {
    t: &'static Texts,
    frame: Frame,
    title: String,
    message: String,
}

/// A page with a title and one message, in the frame's language.
pub fn message(status: StatusCode, frame: Frame, title: &str, message: &str) -> Response {
    render(
        status,
        MessagePage {
            t: frame.t,
            title: title.into(),
            message: message.into(),
            frame,
        },
    )
}
