//! The shop's pages (register, log in, my orders, an order's quote and status)
//! and the CRM back office for managers.

use crate::CrmState;
use crate::accounts::{AccountError, Accounts, NewUser};
use crate::api::get_fresh;
use crate::views::OrderView;
use askama::Template;
use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use domain::{Caller, OrderId, OrderStatus, Role};
use serde::Deserialize;
use web::assets::{Frame, path_of, render, safe_next};
use web::client::ClientAddr;
use web::identity::SESSION_COOKIE;
use web::page::message;
use web::{ApiForm, ApiQuery, Lang, ManagerPage, MaybeCaller, PageOrderId, SignedInPage, Texts};

/// Where a person lands after logging in.
pub fn home_of(user: &Caller) -> &'static str {
    match user.role {
        Role::Customer => "/account",
        Role::Operator => "/mes",
        Role::Manager => "/crm",
    }
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    t: &'static Texts,
    frame: Frame,
}

pub async fn home(lang: Lang, MaybeCaller(user): MaybeCaller, uri: OriginalUri) -> Response {
    let frame = Frame::new(lang, user, path_of(&uri));
    render(StatusCode::OK, HomePage { t: frame.t, frame })
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

pub async fn switch_lang(
    Path(code): Path<String>,
    ApiQuery(q): ApiQuery<NextQuery>,
    jar: CookieJar,
) -> Response {
    let lang = Lang::parse(&code).unwrap_or(Lang::Ru);
    let cookie = Cookie::build(("lang", lang.code()))
        .path("/")
        .max_age(time::Duration::days(365))
        .same_site(SameSite::Lax);
    (jar.add(cookie), Redirect::to(&safe_next(q.next.as_deref()))).into_response()
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    t: &'static Texts,
    frame: Frame,
    error: String,
    email: String,
    next: String,
}

pub async fn login_form(
    lang: Lang,
    MaybeCaller(user): MaybeCaller,
    uri: OriginalUri,
    ApiQuery(q): ApiQuery<NextQuery>,
) -> Response {
    let frame = Frame::new(lang, user, path_of(&uri));
    let next = q.next.unwrap_or_default();
    render(
        StatusCode::OK,
        LoginPage {
            t: frame.t,
            frame,
            error: String::new(),
            email: String::new(),
            next,
        },
    )
}

#[derive(Deserialize)]
pub struct LoginForm {
    email: String,
    password: String,
    #[serde(default)]
    next: String,
}

fn session_cookie(state: &CrmState, token: String) -> Cookie<'static> {
    Cookie::build((SESSION_COOKIE, token))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.cookie_secure)
        .max_age(time::Duration::days(30))
        .build()
}

/// The login page again, with `error` and the `status` to answer.
fn login_again(
    lang: Lang,
    uri: &OriginalUri,
    f: LoginForm,
    error: String,
    status: StatusCode,
) -> Response {
    let frame = Frame::new(lang, None, path_of(uri));
    let page = LoginPage {
        t: frame.t,
        error,
        email: f.email,
        next: f.next,
        frame,
    };
    render(status, page)
}

/// The cookie a browser keeps once its owner logged in with a password: it
/// names the account it was earned for (an HMAC of the address with the
/// identity key), and lets that browser past the account's throttle wait.
const DEVICE_COOKIE: &str = "alex_device";

fn device_mark(state: &CrmState, email: &str) -> String {
    let email = crate::accounts::normalise_email(email);
    state
        .key
        .sign_bytes(format!("known-device:{email}").as_bytes())
}

fn device_cookie(state: &CrmState, email: &str) -> Cookie<'static> {
    Cookie::build((DEVICE_COOKIE, device_mark(state, email)))
        .path("/login")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.cookie_secure)
        .max_age(time::Duration::days(365))
        .build()
}

pub async fn login(
    State(state): State<CrmState>,
    lang: Lang,
    jar: CookieJar,
    uri: OriginalUri,
    ClientAddr(client): ClientAddr,
    ApiForm(f): ApiForm<LoginForm>,
) -> Result<Response, web::ApiError> {
    // A turn first, then the throttle, then the password, and the failure is
    // recorded before the turn is given back: parallel guesses cannot all
    // pass one look at the throttle.
    let _turn = crate::accounts::password_check_turn().await;
    let known_device = jar
        .get(DEVICE_COOKIE)
        .is_some_and(|c| c.value() == device_mark(&state, &f.email));
    // Checked before the password: an attempt while waiting is not an attempt.
    if let Some(wait) = state.logins.waiting(&f.email, client, known_device).await {
        let secs = adapters::throttle::retry_after_seconds(wait);
        tracing::info!(%client, retry_after = secs, "login refused: too many failures");
        let text = lang
            .texts()
            .too_many_attempts
            .replace("{seconds}", &secs.to_string());
        let mut r = login_again(lang, &uri, f, text, StatusCode::TOO_MANY_REQUESTS);
        r.headers_mut()
            .insert(axum::http::header::RETRY_AFTER, secs.into());
        return Ok(r);
    }
    match state
        .accounts
        .verify_password(&f.email, &f.password)
        .await
        .map_err(anyhow::Error::from)?
    {
        Some(user) => {
            state.logins.succeeded(&f.email).await;
            let token = state.accounts.open_session(&user).await?;
            let jar = jar.add(device_cookie(&state, &f.email));
            let dest = if f.next.starts_with('/') {
                safe_next(Some(&f.next))
            } else {
                home_of(&user).to_string()
            };
            tracing::info!(user_id = %user.user_id, "logged in");
            Ok((jar.add(session_cookie(&state, token)), Redirect::to(&dest)).into_response())
        }
        None => {
            state.logins.failed(&f.email, client, known_device).await;
            let error = lang.texts().login_failed.into();
            Ok(login_again(lang, &uri, f, error, StatusCode::UNAUTHORIZED))
        }
    }
}

pub async fn logout(
    State(state): State<CrmState>,
    jar: CookieJar,
) -> Result<Response, web::ApiError> {
    if let Some(c) = jar.get(SESSION_COOKIE) {
        state.accounts.close_session(c.value()).await?;
    }
    Ok((
        jar.remove(Cookie::build(SESSION_COOKIE).path("/")),
        Redirect::to("/"),
    )
        .into_response())
}

#[derive(Template)]
#[template(path = "register.html")]
struct RegisterPage {
    t: &'static Texts,
    frame: Frame,
    error: String,
    email: String,
    name: String,
}

pub async fn register_form(
    lang: Lang,
    MaybeCaller(user): MaybeCaller,
    uri: OriginalUri,
) -> Response {
    let frame = Frame::new(lang, user, path_of(&uri));
    render(
        StatusCode::OK,
        RegisterPage {
            t: frame.t,
            frame,
            error: String::new(),
            email: String::new(),
            name: String::new(),
        },
    )
}

#[derive(Deserialize)]
pub struct RegisterForm {
    email: String,
    name: String,
    password: String,
}

pub async fn register(
    State(state): State<CrmState>,
    lang: Lang,
    jar: CookieJar,
    uri: OriginalUri,
    ApiForm(f): ApiForm<RegisterForm>,
) -> Result<Response, web::ApiError> {
    let new = NewUser {
        email: &f.email,
        name: &f.name,
        password: &f.password,
        role: Role::Customer,
        org: None,
    };
    let t = lang.texts();
    let error = match state.accounts.create_user(new).await {
        Ok(user) => {
            // Notifications are written in the language the customer registered in.
            state
                .accounts
                .set_language(user.user_id, lang.code())
                .await
                .map_err(|e| web::ApiError::Internal(e.into()))?;
            let token = state.accounts.open_session(&user).await?;
            tracing::info!(user_id = %user.user_id, "customer registered");
            return Ok((
                jar.add(session_cookie(&state, token)),
                Redirect::to("/upload"),
            )
                .into_response());
        }
        Err(AccountError::Taken(email)) => {
            // Answered as a new address is (a redirect and a cookie of the
            // same shape, naming no session), so the form tells no one who
            // has an account; the owner is told by e-mail instead, at most
            // once per period however often someone tries.
            if state.logins.notice_due(&email).await {
                state
                    .accounts
                    .registration_attempted(&email)
                    .await
                    .map_err(|e| web::ApiError::Internal(e.into()))?;
            }
            tracing::info!("registration of a taken address answered as a new one");
            let decoy = Accounts::unused_session_token();
            return Ok((
                jar.add(session_cookie(&state, decoy)),
                Redirect::to("/upload"),
            )
                .into_response());
        }
        Err(AccountError::ShortPassword) => t.register_failed_short,
        Err(AccountError::BadEmail(_)) => t.register_failed_email,
        Err(AccountError::EmptyName) => t.register_failed_name,
        Err(AccountError::BadName) => t.register_failed_name_shape,
        Err(AccountError::LongPassword) => t.register_failed_long_password,
        Err(e) => return Err(web::ApiError::Internal(e.into())),
    };
    let frame = Frame::new(lang, None, path_of(&uri));
    Ok(render(
        StatusCode::UNPROCESSABLE_ENTITY,
        RegisterPage {
            t,
            frame,
            error: error.into(),
            email: f.email,
            name: f.name,
        },
    ))
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    t: &'static Texts,
    frame: Frame,
    orders: Vec<OrderView>,
    next_cursor: Option<String>,
}

#[derive(Deserialize)]
pub struct PageQuery {
    cursor: Option<String>,
    status: Option<String>,
}

pub async fn account(
    State(state): State<CrmState>,
    lang: Lang,
    SignedInPage(user): SignedInPage,
    uri: OriginalUri,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Response, web::ApiError> {
    if user.role != Role::Customer {
        return Ok(Redirect::to(home_of(&user)).into_response());
    }
    let cursor = q.cursor.as_deref().and_then(web::paging::decode);
    let page = state.orders.list(&user, None, cursor, 25).await?;
    let t = lang.texts();
    let orders = page.orders.iter().map(|o| OrderView::new(o, t)).collect();
    let frame = Frame::new(lang, Some(user), path_of(&uri));
    Ok(render(
        StatusCode::OK,
        AccountPage {
            t,
            frame,
            orders,
            next_cursor: page.next_cursor,
        },
    ))
}

#[derive(Template)]
#[template(path = "order.html")]
struct OrderPage {
    t: &'static Texts,
    frame: Frame,
    o: OrderView,
    error: String,
    backoffice: bool,
    back_href: &'static str,
}

async fn order_page(
    state: &CrmState,
    lang: Lang,
    user: Caller,
    uri: &OriginalUri,
    id: OrderId,
    error: String,
    status: StatusCode,
) -> Result<Response, web::ApiError> {
    let backoffice = user.role == Role::Manager;
    let frame = Frame::new(lang, Some(user.clone()), path_of(uri));
    let Some(order) = get_fresh(state, &user, id).await? else {
        return Ok(message(
            StatusCode::NOT_FOUND,
            frame,
            lang.texts().error_title,
            lang.texts().not_found,
        ));
    };
    let t = lang.texts();
    // Trace ids are for staff: the customer's page shows statuses and times.
    let o = match backoffice {
        true => OrderView::new(&order, t).link_traces(state.trace_url.as_deref()),
        false => OrderView::new(&order, t),
    };
    let page = OrderPage {
        t,
        o,
        frame,
        error,
        backoffice,
        back_href: if backoffice { "/crm" } else { "/account" },
    };
    Ok(render(status, page))
}

pub async fn order(
    State(state): State<CrmState>,
    lang: Lang,
    SignedInPage(user): SignedInPage,
    uri: OriginalUri,
    PageOrderId(id): PageOrderId,
) -> Result<Response, web::ApiError> {
    if user.role == Role::Operator {
        return Ok(Redirect::to(&format!("/mes/orders/{id}")).into_response());
    }
    order_page(&state, lang, user, &uri, id, String::new(), StatusCode::OK).await
}

async fn decide(
    state: CrmState,
    lang: Lang,
    user: Caller,
    oid: OrderId,
    confirm: bool,
) -> Result<Response, web::ApiError> {
    let result = if confirm {
        state.orders.confirm(&user, oid).await
    } else {
        state.orders.cancel(&user, oid).await
    };
    match result {
        Ok(()) => Ok(Redirect::to(&format!("/account/orders/{oid}")).into_response()),
        Err(e) => {
            let err = web::ApiError::from(e);
            let status = err.status();
            let text = match (&err, lang) {
                (
                    web::ApiError::Conflict {
                        details: Some(d), ..
                    },
                    Lang::Ru,
                ) => format!(
                    "Действие недоступно: заказ сейчас в статусе «{}».",
                    lang.texts()
                        .status(d["current_status"].as_str().unwrap_or(""))
                ),
                (
                    web::ApiError::Conflict {
                        details: Some(d), ..
                    },
                    Lang::En,
                ) => format!(
                    "Not possible: the order is now {}.",
                    lang.texts()
                        .status(d["current_status"].as_str().unwrap_or(""))
                ),
                _ => err.to_string(),
            };
            let path = OriginalUri(format!("/account/orders/{oid}").parse().unwrap_or_default());
            order_page(&state, lang, user, &path, oid, text, status).await
        }
    }
}

pub async fn confirm(
    State(state): State<CrmState>,
    lang: Lang,
    SignedInPage(user): SignedInPage,
    PageOrderId(id): PageOrderId,
) -> Result<Response, web::ApiError> {
    decide(state, lang, user, id, true).await
}

pub async fn cancel(
    State(state): State<CrmState>,
    lang: Lang,
    SignedInPage(user): SignedInPage,
    PageOrderId(id): PageOrderId,
) -> Result<Response, web::ApiError> {
    decide(state, lang, user, id, false).await
}

#[derive(Template)]
#[template(path = "backoffice.html")]
struct BackofficePage {
    t: &'static Texts,
    frame: Frame,
    orders: Vec<OrderView>,
    statuses: Vec<(&'static str, &'static str, bool)>,
    selected: String,
    next_cursor: Option<String>,
}

pub async fn backoffice(
    State(state): State<CrmState>,
    lang: Lang,
    ManagerPage(user): ManagerPage,
    uri: OriginalUri,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Response, web::ApiError> {
    let status = q.status.as_deref().and_then(OrderStatus::parse);
    let cursor = q.cursor.as_deref().and_then(web::paging::decode);
    let page = state.orders.list(&user, status, cursor, 50).await?;
    let t = lang.texts();
    let page = BackofficePage {
        t,
        orders: page.orders.iter().map(|o| OrderView::new(o, t)).collect(),
        statuses: OrderStatus::ALL
            .iter()
            .map(|s| (s.as_str(), t.status(s.as_str()), Some(*s) == status))
            .collect(),
        selected: status.map(|s| s.as_str().to_string()).unwrap_or_default(),
        next_cursor: page.next_cursor,
        frame: Frame::new(lang, Some(user), path_of(&uri)),
    };
    Ok(render(StatusCode::OK, page))
}

pub async fn backoffice_order(
    State(state): State<CrmState>,
    lang: Lang,
    ManagerPage(user): ManagerPage,
    uri: OriginalUri,
    PageOrderId(id): PageOrderId,
) -> Result<Response, web::ApiError> {
    order_page(&state, lang, user, &uri, id, String::new(), StatusCode::OK).await
}
