//! E-mail: what a customer is told about each status, in Russian or English,
//! and how it leaves: `.eml` files in a directory (the embedded default) or SMTP.

use domain::OrderStatus;
use domain::events::OrderUpdated;
use domain::money::{Currency, Money};
use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Body, Mailbox, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::path::PathBuf;
use web::Lang;
use web::text::unsafe_char;

/// A message's subject and plain-text body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub body: String,
}

/// An amount as an English reader writes it: "127,781.02 ₽".
pub fn money_en(m: &Money) -> String {
    let sign = if m.minor < 0 { "-" } else { "" };
    let abs = m.minor.unsigned_abs();
    let digits = (abs / 100).to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let symbol = match m.currency {
        Currency::RUB => "₽",
    };
    format!("{sign}{grouped}.{:02}\u{a0}{symbol}", abs % 100)
}

/// An amount as a Russian reader writes it: "127 781,02 ₽".
pub fn money_ru(m: &Money) -> String {
    m.display()
}

/// The longest display name put in a header or a greeting, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// The longest e-mail address (RFC 5321's path limit less the brackets).
pub const MAX_ADDRESS_BYTES: usize = 254;

/// `text` on one line: every unsafe character and run of whitespace becomes
/// one space, the ends are trimmed, and at most `max_chars` characters are
/// kept (a cut text ends with '…').
pub fn one_line(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars * 4));
    let mut kept = 0;
    let mut space = false;
    for c in text.chars() {
        if unsafe_char(c) || c.is_whitespace() {
            space = !out.is_empty();
            continue;
        }
        if kept + usize::from(space) + 1 > max_chars {
            out.push('…');
            return out;
        }
        if std::mem::take(&mut space) {
            out.push(' ');
            kept += 1;
        }
        out.push(c);
        kept += 1;
    }
    out
}

/// A customer's name as a header's display name and a greeting show it: one
/// line, bounded; None when nothing printable is left.
pub fn display_name(raw: &str) -> Option<String> {
    Some(one_line(raw, MAX_NAME_CHARS)).filter(|n| !n.is_empty())
}

/// Why a message cannot be made: nothing sent later could change it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unsendable {
    #[error("the recipient's address is not an e-mail address: {0}")]
    InvalidAddress(String),
    #[error("the message cannot be built: {0}")]
    Build(String),
}

impl Unsendable {
    /// The reason the delivery log and the metrics give.
    pub fn reason(&self) -> &'static str {
        match self {
            Unsendable::InvalidAddress(_) => "invalid_address",
            Unsendable::Build(_) => "unsendable",
        }
    }
}

/// Why a built message did not leave.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// It may leave on a later attempt (a server down, a full disk).
    #[error("{0}")]
    Transient(String),
    /// The server refused it for good (a 5xx reply): another attempt would be refused too.
    #[error("{0}")]
    Permanent(String),
}

/// The recipient's address, checked: bounded, no spaces or control
/// characters, and one that lettre accepts.
pub fn address(raw: &str) -> Result<lettre::Address, Unsendable> {
    let shown = one_line(raw, 80);
    if raw.len() > MAX_ADDRESS_BYTES {
        return Err(Unsendable::InvalidAddress(format!(
            "'{shown}' is longer than {MAX_ADDRESS_BYTES} bytes"
        )));
    }
    if raw.chars().any(|c| unsafe_char(c) || c.is_whitespace()) {
        return Err(Unsendable::InvalidAddress(format!(
            "'{shown}' holds spaces or control characters"
        )));
    }
    raw.parse()
        .map_err(|e| Unsendable::InvalidAddress(format!("'{shown}': {e}")))
}

/// The message for one status change, in `lang`. Every text that came from
/// outside (names, file names, reasons, tracking numbers) is put on one
/// bounded line first, so none can add lines of its own.
pub fn render(ev: &OrderUpdated, lang: Lang) -> Rendered {
    let id = ev.order_id.to_string();
    let name = display_name(&ev.contact.name).unwrap_or_default();
    let file = one_line(&ev.file_name, 120);
    let material = one_line(&ev.material, 40);
    let tracking = ev
        .tracking_number
        .as_deref()
        .map(|t| one_line(t, 64))
        .filter(|t| !t.is_empty())
        .unwrap_or("—".into());
    let reason = ev
        .rejection
        .as_ref()
        .map(|r| one_line(&r.reason, 500))
        .filter(|r| !r.is_empty())
        .unwrap_or("—".into());
    let (subject, text) = match lang {
        Lang::Ru => {
            let price = ev.price_total.as_ref().map(money_ru).unwrap_or("—".into());
            match ev.status {
                OrderStatus::Pricing => (
                    format!("Заказ {id} принят: рассчитываем стоимость"),
                    format!(
                        "Мы получили вашу модель «{file}» и рассчитываем стоимость заказа {id}. Напишем, как только цена будет готова."
                    ),
                ),
                OrderStatus::AwaitingConfirmation => (
                    format!("Ваш заказ {id} оценён: {price}"),
                    format!(
                        "Заказ {id} (модель «{file}», материал {material}) оценён: {price}.\nПодтвердите или отмените заказ в личном кабинете или через API."
                    ),
                ),
                OrderStatus::Rejected => (
                    format!("Заказ {id} не может быть изготовлен"),
                    format!(
                        "К сожалению, модель «{file}» нельзя изготовить.\nПричина: {reason}\nИсправьте модель и загрузите её снова."
                    ),
                ),
                OrderStatus::Confirmed => (
                    format!("Заказ {id} подтверждён"),
                    format!("Спасибо! Заказ {id} подтверждён и ждёт мастера."),
                ),
                OrderStatus::Cancelled => (
                    format!("Заказ {id} отменён"),
                    format!("Заказ {id} отменён. Если это ошибка, загрузите модель снова."),
                ),
                OrderStatus::ManufacturingStarted => (
                    format!("Заказ {id}: изготовление началось"),
                    format!("Мастер взял заказ {id} в работу."),
                ),
                OrderStatus::Manufactured => (
                    format!("Заказ {id} изготовлен"),
                    format!("Заказ {id} изготовлен; скоро упакуем его."),
                ),
                OrderStatus::Packed => (
                    format!("Заказ {id} упакован"),
                    format!("Заказ {id} упакован и готов к отправке."),
                ),
                OrderStatus::Shipped => (
                    format!("Заказ {id} отправлен"),
                    format!("Заказ {id} отправлен. Трек-номер: {tracking}."),
                ),
            }
        }
        Lang::En => {
            let price = ev.price_total.as_ref().map(money_en).unwrap_or("—".into());
            match ev.status {
                OrderStatus::Pricing => (
                    format!("Order {id} received: we are pricing it"),
                    format!(
                        "We have received your model \"{file}\" and are pricing order {id}. We will write as soon as the price is ready."
                    ),
                ),
                OrderStatus::AwaitingConfirmation => (
                    format!("Your order {id} is priced: {price}"),
                    format!(
                        "Order {id} (model \"{file}\", material {material}) is priced at {price}.\nConfirm or cancel it in your account or through the API."
                    ),
                ),
                OrderStatus::Rejected => (
                    format!("Order {id} cannot be made"),
                    format!(
                        "Unfortunately the model \"{file}\" cannot be made.\nReason: {reason}\nPlease fix the model and upload it again."
                    ),
                ),
                OrderStatus::Confirmed => (
                    format!("Order {id} is confirmed"),
                    format!("Thank you! Order {id} is confirmed and waits for a craftsperson."),
                ),
                OrderStatus::Cancelled => (
                    format!("Order {id} is cancelled"),
                    format!(
                        "Order {id} is cancelled. If this is a mistake, upload the model again."
                    ),
                ),
                OrderStatus::ManufacturingStarted => (
                    format!("Order {id}: manufacturing has started"),
                    format!("A craftsperson has taken order {id} into work."),
                ),
                OrderStatus::Manufactured => (
                    format!("Order {id} is made"),
                    format!("Order {id} is made; we will pack it soon."),
                ),
                OrderStatus::Packed => (
                    format!("Order {id} is packed"),
                    format!("Order {id} is packed and ready to ship."),
                ),
                OrderStatus::Shipped => (
                    format!("Order {id} is shipped"),
                    format!("Order {id} is on its way. Tracking number: {tracking}."),
                ),
            }
        }
    };
    let (hello, bye) = match lang {
        Lang::Ru => (
            if name.is_empty() {
                "Здравствуйте!".to_string()
            } else {
                format!("Здравствуйте, {name}!")
            },
            "С уважением,\nАлександрит",
        ),
        Lang::En => (
            if name.is_empty() {
                "Hello,".to_string()
            } else {
                format!("Hello {name},")
            },
            "Kind regards,\nAlexandrite",
        ),
    };
    Rendered {
        subject,
        body: format!("{hello}\n\n{text}\n\n{bye}\n"),
    }
}

/// The longest line 8bit mail takes here (lettre refuses 76 bytes or more,
/// counting the CRLF).
const MAX_LINE_BYTES: usize = 72;

/// Wraps each line at spaces so that no line is longer than [`MAX_LINE_BYTES`]
/// (a single longer word stays whole).
pub fn wrap(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let mut len = 0;
        for (j, word) in line.split(' ').enumerate() {
            if j > 0 {
                if len + 1 + word.len() > MAX_LINE_BYTES {
                    out.push('\n');
                    len = 0;
                } else {
                    out.push(' ');
                    len += 1;
                }
            }
            out.push_str(word);
            len += word.len();
        }
    }
    out
}

/// How e-mail leaves this process.
pub enum Transport {
    /// One `.eml` file per message in a directory.
    Files(PathBuf),
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
}

/// Why mail could not be configured.
#[derive(Debug, thiserror::Error)]
pub enum MailConfigError {
    #[error("notifier.smtp_url '{0}' is not a URL")]
    BadUrl(String),
    #[error(
        "notifier.smtp_url must be smtp://[user:password@]host[:port] (this build speaks plain SMTP; got {0}://)"
    )]
    Scheme(String),
    #[error("notifier.mail_from '{0}' is not a mailbox (e.g. 'Alexandrite <noreply@example.com>')")]
    From(String),
}

/// Builds and sends the messages.
pub struct Mailer {
    transport: Transport,
    from: Mailbox,
}

impl Mailer {
    /// SMTP when `smtp_url` is set, otherwise files in `mail_dir`.
    pub fn new(
        smtp_url: Option<&str>,
        mail_dir: PathBuf,
        from: &str,
    ) -> Result<Mailer, MailConfigError> {
        let from: Mailbox = from
            .parse()
            .map_err(|_| MailConfigError::From(from.to_string()))?;
        let transport = match smtp_url.filter(|u| !u.trim().is_empty()) {
            None => Transport::Files(mail_dir),
            Some(raw) => {
                let url = url::Url::parse(raw)
                    .map_err(|_| MailConfigError::BadUrl(adapters::db::redact(raw)))?;
                if url.scheme() != "smtp" {
                    return Err(MailConfigError::Scheme(url.scheme().to_string()));
                }
                let host = url
                    .host_str()
                    .ok_or_else(|| MailConfigError::BadUrl(adapters::db::redact(raw)))?;
                let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
                    .port(url.port().unwrap_or(25))
                    .timeout(Some(std::time::Duration::from_secs(30)));
                if !url.username().is_empty() {
                    // The URL keeps them percent-encoded (a password may hold @ : / %).
                    let decode = |s: &str| {
                        percent_encoding::percent_decode_str(s)
                            .decode_utf8_lossy()
                            .into_owned()
                    };
                    b = b.credentials(Credentials::new(
                        decode(url.username()),
                        decode(url.password().unwrap_or_default()),
                    ));
                }
                Transport::Smtp(b.build())
            }
        };
        Ok(Mailer { transport, from })
    }

    /// Where files go, if this mailer writes files.
    pub fn mail_dir(&self) -> Option<&PathBuf> {
        match &self.transport {
            Transport::Files(d) => Some(d),
            Transport::Smtp(_) => None,
        }
    }

    /// The whole message, as sent. Headers are made by lettre's typed
    /// headers only (the display name is encoded, never pasted into a line),
    /// and the name is put on one bounded line first.
    pub fn message(
        &self,
        to_email: &str,
        to_name: &str,
        lang: Lang,
        r: &Rendered,
    ) -> Result<Message, Unsendable> {
        let to = Mailbox::new(display_name(to_name), address(to_email)?);
        // 8bit keeps the text readable in the file and in any mail tool; it
        // needs short lines, so the text is wrapped at spaces. A word too long
        // for a line lets lettre choose quoted-printable or base64 instead.
        let clean: String = r
            .body
            .chars()
            .map(|c| if c != '\n' && unsafe_char(c) { ' ' } else { c })
            .collect();
        let text = wrap(&clean).replace('\n', "\r\n");
        let body = Body::new_with_encoding(text.clone(), ContentTransferEncoding::EightBit)
            .unwrap_or_else(|_| Body::new(text));
        let part = SinglePart::builder()
            .header(ContentType::TEXT_PLAIN)
            .body(body);
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(one_line(&r.subject, 200))
            .header(ContentLanguage(lang.code().to_string()))
            .singlepart(part)
            .map_err(|e| Unsendable::Build(e.to_string()))
    }

    /// Sends one message; `name` names its file (unique per order, status and
    /// address). Files and their directory are readable by this account only:
    /// they hold customers' names and addresses.
    pub async fn send(&self, name: &str, message: Message) -> Result<(), SendError> {
        match &self.transport {
            Transport::Files(dir) => {
                let io =
                    |e: std::io::Error| SendError::Transient(format!("writing the message: {e}"));
                adapters::private::create_dir(dir).map_err(io)?;
                let path = dir.join(format!("{name}.eml"));
                // Written whole, then renamed: a reader never sees half a message.
                let bytes = message.formatted();
                let target = path.clone();
                tokio::task::spawn_blocking(move || adapters::private::write(&target, &bytes))
                    .await
                    .map_err(|e| SendError::Transient(format!("writing the message: {e}")))?
                    .map_err(io)?;
                Ok(())
            }
            Transport::Smtp(smtp) => match smtp.send(message).await {
                Ok(_) => Ok(()),
                Err(e) if e.is_permanent() => Err(SendError::Permanent(e.to_string())),
                Err(e) => Err(SendError::Transient(e.to_string())),
            },
        }
    }
}

/// `Content-Language`: the language the message is written in.
#[derive(Debug, Clone)]
struct ContentLanguage(String);

impl lettre::message::header::Header for ContentLanguage {
    fn name() -> lettre::message::header::HeaderName {
        lettre::message::header::HeaderName::new_from_ascii_str("Content-Language")
    }
    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(ContentLanguage(s.to_string()))
    }
    fn display(&self) -> lettre::message::header::HeaderValue {
        lettre::message::header::HeaderValue::new(Self::name(), self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::OrderId;
    use domain::events::{Contact, RejectionView};

    fn event(status: OrderStatus, lang: &str) -> OrderUpdated {
        OrderUpdated {
            order_id: OrderId::new(),
            status,
            at: "2026-12-07T00:00:00.000Z".into(),
            contact: Contact {
                email: "irina@example.test".into(),
                name: "Ирина".into(),
                language: lang.into(),
                organisation: None,
            },
            file_name: "ring.stl".into(),
            material: "AU585Y".into(),
            price_total: Some(Money::rub(12_778_102)),
            rejection: None,
            tracking_number: None,
        }
    }

    #[test]
    fn prices_are_written_as_each_language_writes_them() {
        assert_eq!(
            money_ru(&Money::rub(12_778_102)),
            "127\u{202f}781,02\u{a0}₽"
        );
        assert_eq!(money_en(&Money::rub(12_778_102)), "127,781.02\u{a0}₽");
        assert_eq!(money_en(&Money::rub(5)), "0.05\u{a0}₽");
        assert_eq!(money_en(&Money::rub(100_000_000)), "1,000,000.00\u{a0}₽");
    }

    #[test]
    fn the_priced_message_names_the_price_in_the_customers_language() {
        let ev = event(OrderStatus::AwaitingConfirmation, "ru");
        let ru = render(&ev, Lang::Ru);
        assert_eq!(
            ru.subject,
            format!("Ваш заказ {} оценён: 127\u{202f}781,02\u{a0}₽", ev.order_id)
        );
        assert!(
            ru.body.starts_with("Здравствуйте, Ирина!\n\n"),
            "{}",
            ru.body
        );
        assert!(ru.body.contains("материал AU585Y"));
        let en = render(&ev, Lang::En);
        assert_eq!(
            en.subject,
            format!("Your order {} is priced: 127,781.02\u{a0}₽", ev.order_id)
        );
        assert!(en.body.starts_with("Hello Ирина,\n\n") && en.body.ends_with("Alexandrite\n"));
    }

    #[test]
    fn every_status_has_its_own_text_in_both_languages() {
        let statuses = OrderStatus::ALL;
        for lang in [Lang::Ru, Lang::En] {
            let mut subjects = std::collections::HashSet::new();
            for s in statuses {
                let ev = event(s, lang.code());
                let r = render(&ev, lang);
                assert!(r.subject.contains(&ev.order_id.to_string()));
                assert!(subjects.insert(r.subject.replace(&ev.order_id.to_string(), "")));
                let cyrillic = r.subject.chars().any(|c| ('а'..='я').contains(&c));
                assert_eq!(cyrillic, lang == Lang::Ru, "{lang:?} {s}: {}", r.subject);
            }
        }
    }

    #[test]
    fn rejections_and_shipments_carry_their_details() {
        let mut ev = event(OrderStatus::Rejected, "en");
        ev.rejection = Some(RejectionView {
            code: "not_watertight".into(),
            reason: "not watertight: 14 open edges".into(),
        });
        assert!(
            render(&ev, Lang::En)
                .body
                .contains("Reason: not watertight: 14 open edges")
        );
        assert!(
            render(&ev, Lang::Ru)
                .body
                .contains("Причина: not watertight: 14 open edges")
        );
        let mut ev = event(OrderStatus::Shipped, "ru");
        ev.tracking_number = Some("RA123456789RU".into());
        assert!(
            render(&ev, Lang::Ru)
                .body
                .contains("Трек-номер: RA123456789RU.")
        );
        assert!(
            render(&ev, Lang::En)
                .body
                .contains("Tracking number: RA123456789RU.")
        );
    }

    #[test]
    fn long_lines_are_wrapped_at_spaces() {
        let long = "Заказ 0193a3c4-0000-7000-8000-000000000000 (модель «ring.stl», материал AU585Y) оценён: 1 000,00 ₽.";
        let w = wrap(&format!("Здравствуйте!\n\n{long}"));
        assert!(w.lines().all(|l| l.len() <= MAX_LINE_BYTES), "{w}");
        assert_eq!(wrap(long).replace('\n', " "), long);
        assert_eq!(wrap("a\n\nb"), "a\n\nb");
        assert_eq!(wrap("short\nlines"), "short\nlines");
    }

    #[tokio::test]
    async fn files_hold_whole_readable_messages() {
        let dir = tempfile::tempdir().unwrap();
        let mailer = Mailer::new(
            None,
            dir.path().join("mail"),
            "Alexandrite <noreply@alexandrite.local>",
        )
        .unwrap();
        let ev = event(OrderStatus::AwaitingConfirmation, "ru");
        let r = render(&ev, Lang::Ru);
        let m = mailer
            .message("irina@example.test", "Ирина", Lang::Ru, &r)
            .unwrap();
        mailer.send("one", m).await.unwrap();
        let text = std::fs::read_to_string(dir.path().join("mail/one.eml")).unwrap();
        assert!(text.contains("irina@example.test"));
        assert!(text.contains("Content-Language: ru"));
        assert!(text.contains("Content-Transfer-Encoding: 8bit"));
        assert!(text.contains("Здравствуйте, Ирина!\r\n"), "{text}");
        assert!(text.contains("127\u{202f}781,02\u{a0}₽"));
        // A word longer than a line: still sent, in another encoding.
        let mut odd = r.clone();
        odd.body = "x".repeat(200);
        let m = mailer
            .message("irina@example.test", "", Lang::Ru, &odd)
            .unwrap();
        assert!(
            !String::from_utf8(m.formatted())
                .unwrap()
                .contains("Content-Transfer-Encoding: 8bit")
        );
        let bad = Mailer::new(
            Some("smtps://mail.example.com"),
            dir.path().into(),
            "a@b.test",
        );
        assert!(matches!(bad, Err(MailConfigError::Scheme(s)) if s == "smtps"));
        assert!(Mailer::new(None, dir.path().into(), "not a mailbox").is_err());
    }

    fn mailer_in(dir: &std::path::Path) -> Mailer {
        Mailer::new(
            None,
            dir.join("mail"),
            "Alexandrite <noreply@alexandrite.local>",
        )
        .unwrap()
    }

    /// The header block of a formatted message, unfolded (continuation lines
    /// joined to the line they continue).
    fn headers(m: &Message) -> Vec<String> {
        let text = String::from_utf8_lossy(&m.formatted()).into_owned();
        let head = text.split("\r\n\r\n").next().unwrap_or("").to_string();
        let mut out: Vec<String> = vec![];
        for line in head.split("\r\n") {
            if line.starts_with([' ', '\t']) {
                if let Some(last) = out.last_mut() {
                    last.push_str(line);
                }
            } else {
                out.push(line.to_string());
            }
        }
        out
    }

    /// Every header line is `Name: value` with a name we set, and nothing in
    /// the message is a bare CR or LF.
    fn assert_sane(m: &Message) {
        let known = [
            "From",
            "To",
            "Subject",
            "Content-Language",
            "Content-Type",
            "Content-Transfer-Encoding",
            "MIME-Version",
            "Date",
        ];
        for h in headers(m) {
            let name = h.split(':').next().unwrap_or("");
            assert!(known.contains(&name), "unexpected header line {h:?}");
        }
        let bytes = m.formatted();
        for (i, b) in bytes.iter().enumerate() {
            match b {
                b'\r' => assert_eq!(bytes.get(i + 1), Some(&b'\n'), "a bare CR"),
                b'\n' => assert!(i > 0 && bytes[i - 1] == b'\r', "a bare LF"),
                0 => panic!("a NUL in the message"),
                _ => {}
            }
        }
    }

    #[test]
    fn names_are_put_on_one_bounded_line() {
        assert_eq!(one_line("  Ирина \r\n Смирнова\t", 100), "Ирина Смирнова");
        assert_eq!(one_line("a\0b\u{7f}c\u{85}d\u{2028}e", 100), "a b c d e");
        assert_eq!(one_line("\u{202e}evil", 100), "evil");
        assert_eq!(one_line("abcdef", 3), "abc…");
        assert_eq!(one_line(&"я".repeat(10_000), 100).chars().count(), 101);
        assert_eq!(display_name("\r\n \0"), None);
        assert_eq!(display_name("Emma"), Some("Emma".into()));
    }

    #[test]
    fn a_hostile_name_makes_one_sane_message_or_none() {
        let dir = tempfile::tempdir().unwrap();
        let mailer = mailer_in(dir.path());
        for name in [
            "Eve\r\nBcc: victim@evil.test",
            "Eve\nBcc: victim@evil.test",
            "Eve\rBcc: victim@evil.test",
            "Bcc: x@evil",
            "\"Eve\" <boss@company.test>, x@evil.test",
            "Eve\r\n\r\nInjected body",
            "=?utf-8?b?QmNjOiB4QGV2aWw=?=",
            "a\0b",
            "\u{2028}\u{2029}\u{202e}",
            "Ирина 🌸 Смирнова",
            "",
            "\r\n",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([
            "x".repeat(10 * 1024),
            "Ж".repeat(10 * 1024),
            "a ".repeat(5 * 1024),
        ]) {
            let mut ev = event(OrderStatus::AwaitingConfirmation, "en");
            ev.contact.name = name.clone();
            ev.file_name = format!("{name}.stl");
            let r = render(&ev, Lang::En);
            assert!(
                !r.body.contains('\r') && r.body.lines().count() <= 12,
                "{name:?}: {}",
                r.body
            );
            let m = mailer
                .message("irina@example.test", &name, Lang::En, &r)
                .unwrap_or_else(|e| panic!("{name:?}: {e}"));
            assert_sane(&m);
            let hs = headers(&m);
            assert!(
                !hs.iter().any(|h| h.to_ascii_lowercase().starts_with("bcc")),
                "{name:?}: {hs:?}"
            );
            let to: Vec<_> = hs.iter().filter(|h| h.starts_with("To:")).collect();
            assert_eq!(to.len(), 1, "{hs:?}");
            assert!(
                to[0].ends_with("<irina@example.test>") || to[0] == "To: irina@example.test",
                "{to:?}"
            );
            assert!(to[0].len() < 1200, "the name is bounded: {}", to[0].len());
        }
    }

    #[test]
    fn an_address_lettre_cannot_take_is_refused_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let mailer = mailer_in(dir.path());
        let r = render(&event(OrderStatus::Confirmed, "ru"), Lang::Ru);
        for to in [
            "not an address",
            "no-at-sign",
            "a@b@c",
            "victim@evil.test\r\nBcc: x@evil.test",
            "a\0@example.test",
            "",
            &format!("{}@example.test", "a".repeat(300)),
        ] {
            let e = mailer.message(to, "Eve", Lang::Ru, &r).unwrap_err();
            assert_eq!(e.reason(), "invalid_address", "{to:?}: {e}");
            assert!(!e.to_string().contains('\n'), "{e}");
        }
    }

    /// Any text (line breaks included), or one dense in what headers fear.
    const HOSTILE_TEXT: &str = "(?s).{0,300}|[\\x00-\\x20A-Za-z:@<>\",;=?\\\\]{0,80}";

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// No name, address, organisation, file name or reason makes the
        /// message builder panic; what it builds is sane.
        #[test]
        fn no_text_makes_the_message_builder_panic(
            name in HOSTILE_TEXT,
            email in "(?s).{0,80}|[a-z]{1,10}@[a-z]{1,10}\\.test|[\\x00-\\x20a-z:@<>]{1,20}@[a-z]{1,10}\\.test",
            org in proptest::option::of(HOSTILE_TEXT),
            file in HOSTILE_TEXT,
            reason in HOSTILE_TEXT,
            tracking in proptest::option::of(HOSTILE_TEXT),
            ru in proptest::bool::ANY,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mailer = mailer_in(dir.path());
            let lang = if ru { Lang::Ru } else { Lang::En };
            for status in OrderStatus::ALL {
                let mut ev = event(status, lang.code());
                ev.contact.name = name.clone();
                ev.contact.email = email.clone();
                ev.contact.organisation = org.clone();
                ev.file_name = file.clone();
                ev.material = reason.chars().take(20).collect();
                ev.rejection = Some(RejectionView { code: "x".into(), reason: reason.clone() });
                ev.tracking_number = tracking.clone();
                let r = render(&ev, lang);
                match mailer.message(&email, &name, lang, &r) {
                    Ok(m) => assert_sane(&m),
                    Err(e) => proptest::prop_assert_eq!(e.reason(), "invalid_address"),
                }
            }
        }
    }

    /// A minimal SMTP sink: accepts one message and hands over what it got.
    async fn smtp_sink() -> (u16, tokio::task::JoinHandle<(Vec<String>, String)>) {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let (sock, _) = listener.accept().await.unwrap();
            let (r, mut w) = sock.into_split();
            let mut lines = BufReader::new(r).lines();
            let (mut commands, mut data) = (vec![], String::new());
            w.write_all(b"220 sink\r\n").await.unwrap();
            while let Some(line) = lines.next_line().await.unwrap() {
                let verb = line.split(' ').next().unwrap_or("").to_ascii_uppercase();
                commands.push(line.clone());
                let reply: &[u8] = match verb.as_str() {
                    "EHLO" | "HELO" => b"250-sink\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n",
                    "AUTH" => b"235 ok\r\n",
                    "DATA" => {
                        w.write_all(b"354 go on\r\n").await.unwrap();
                        while let Some(l) = lines.next_line().await.unwrap() {
                            if l == "." {
                                break;
                            }
                            data.push_str(&l);
                            data.push('\n');
                        }
                        b"250 queued\r\n"
                    }
                    "QUIT" => {
                        w.write_all(b"221 bye\r\n").await.unwrap();
                        break;
                    }
                    _ => b"250 ok\r\n",
                };
                w.write_all(reply).await.unwrap();
            }
            (commands, data)
        });
        (port, task)
    }

    #[tokio::test]
    async fn smtp_delivers_the_same_message_to_a_server() {
        let (port, sink) = smtp_sink().await;
        let dir = tempfile::tempdir().unwrap();
        let mailer = Mailer::new(
            Some(&format!("smtp://mailer:secret@127.0.0.1:{port}")),
            dir.path().join("unused"),
            "Alexandrite <noreply@alexandrite.local>",
        )
        .unwrap();
        assert!(mailer.mail_dir().is_none());
        let ev = event(OrderStatus::Shipped, "en");
        let r = render(&ev, Lang::En);
        let m = mailer
            .message("emma@example.test", "Emma", Lang::En, &r)
            .unwrap();
        mailer.send("ignored", m).await.unwrap();
        let (commands, data) = sink.await.unwrap();
        assert!(
            commands
                .iter()
                .any(|c| c.starts_with("MAIL FROM:<noreply@alexandrite.local>")),
            "{commands:?}"
        );
        assert!(
            commands.iter().any(|c| c == "RCPT TO:<emma@example.test>"),
            "{commands:?}"
        );
        assert!(
            commands.iter().any(|c| c.starts_with("AUTH")),
            "credentials from the URL: {commands:?}"
        );
        assert!(data.contains("Content-Language: en"), "{data}");
        assert!(data.contains("Hello Ирина,\n\nOrder"), "{data}");
        assert!(
            !dir.path().join("unused").exists(),
            "nothing is written to files"
        );
    }
}
