//! Notices about an account rather than an order: someone tried to register
//! an address that already has an account (the shop answered them as for a
//! new address, so as not to tell who has an account); its owner is told.
//! Recorded and sent like order e-mails: once per notice and address,
//! retried with the same backoff.

use crate::deliveries::{self, EMAIL};
use crate::mail::{Mailer, Rendered, SendError};
use adapters::bus::DeliveryError;
use adapters::{Db, inbox};
use domain::events::{Envelope, RegistrationAttempted};
use tokio::sync::Notify;
use web::Lang;

/// The delivery log's status for this notice.
pub const STATUS: &str = "registration_attempted";

/// Records the e-mail to send for one `account.registration_attempted`.
pub async fn consume(
    db: &Db,
    wake: &Notify,
    consumer: &str,
    env: &Envelope,
) -> Result<(), DeliveryError> {
    let ev: RegistrationAttempted = env
        .decode()
        .map_err(|e| DeliveryError::Reject(e.to_string()))?;
    let email = ev.contact.email.trim().to_lowercase();
    let mut tx = db.begin_write().await.map_err(anyhow::Error::from)?;
    if !inbox::first_time(&mut tx, consumer, &env.event_id)
        .await
        .map_err(anyhow::Error::from)?
    {
        return Ok(());
    }
    let new = !email.is_empty()
        && deliveries::record(&mut tx, env, STATUS, EMAIL, &email, None)
            .await
            .map_err(anyhow::Error::from)?;
    tx.commit().await.map_err(anyhow::Error::from)?;
    if new {
        wake.notify_one();
    }
    Ok(())
}

/// The owner's message, in their language.
pub fn render(ev: &RegistrationAttempted, lang: Lang) -> Rendered {
    let name = ev.contact.name.trim();
    let email = ev.contact.email.trim();
    match lang {
        Lang::Ru => Rendered {
            subject: "Попытка зарегистрироваться с вашим адресом".into(),
            body: format!(
                "{}\n\nКто-то попытался зарегистрироваться в Александрите с адресом {email}, \
                 но у этого адреса уже есть аккаунт — ваш. Аккаунт не изменился, \
                 и новый не создан.\n\nЕсли это были вы, просто войдите со своим паролем. \
                 Если нет — ничего делать не нужно.\n\nС уважением,\nАлександрит\n",
                if name.is_empty() {
                    "Здравствуйте!".to_string()
                } else {
                    format!("Здравствуйте, {name}!")
                }
            ),
        },
        Lang::En => Rendered {
            subject: "Someone tried to register with your address".into(),
            body: format!(
                "{}\n\nSomeone tried to register at Alexandrite with the address {email}, \
                 which already has an account: yours. Your account is unchanged and no \
                 new one was made.\n\nIf it was you, just log in with your password. \
                 If not, you need do nothing.\n\nKind regards,\nAlexandrite\n",
                if name.is_empty() {
                    "Hello,".to_string()
                } else {
                    format!("Hello {name},")
                }
            ),
        },
    }
}

/// Sends the notice of one delivery row. `Err((Some(reason), why))` when
/// no attempt can succeed (given up), `Err((None, why))` to try again.
pub async fn email(
    mailer: &Mailer,
    env: &Envelope,
    to: &str,
    id: &str,
    attempt: u32,
) -> Result<(), (Option<&'static str>, String)> {
    let ev: RegistrationAttempted = env
        .decode()
        .map_err(|e| (Some("unreadable_event"), e.to_string()))?;
    let lang = Lang::parse(&ev.contact.language).unwrap_or(Lang::Ru);
    let message = mailer
        .message(to, &ev.contact.name, lang, &render(&ev, lang))
        .map_err(|e| (Some(e.reason()), e.to_string()))?;
    let name = format!("{}-{STATUS}-{id}-{attempt}", ev.notice_id);
    mailer.send(&name, message).await.map_err(|e| match e {
        SendError::Permanent(e) => (
            Some("permanent_failure"),
            format!("the server refused it: {e}"),
        ),
        SendError::Transient(e) => (None, e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::events::Contact;

    #[test]
    fn the_owner_is_told_in_their_language_without_a_link_to_follow() {
        let ev = RegistrationAttempted::now(Contact {
            email: "anna@example.com".into(),
            name: "Анна".into(),
            language: "ru".into(),
            organisation: None,
        });
        let ru = render(&ev, Lang::Ru);
        assert!(ru.body.contains("Здравствуйте, Анна!"), "{}", ru.body);
        assert!(ru.body.contains("anna@example.com"));
        let en = render(&ev, Lang::En);
        assert!(en.subject.contains("register"));
        assert!(en.body.contains("already has an account"), "{}", en.body);
        assert!(
            !en.body.contains("http"),
            "nothing to click in a mail anyone can trigger"
        );
    }
}
