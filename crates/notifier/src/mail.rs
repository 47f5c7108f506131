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

/// The message for one status change, in `lang`.
pub fn render(ev: &OrderUpdated, lang: Lang) -> Rendered {
    let id = ev.order_id.to_string();
    let name = ev.contact.name.trim();
    let file = &ev.file_name;
    let tracking = ev.tracking_number.as_deref().unwrap_or("—");
    let reason = ev
        .rejection
        .as_ref()
        .map(|r| r.reason.as_str())
        .unwrap_or("—");
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
                        "Заказ {id} (модель «{file}», материал {}) оценён: {price}.\nПодтвердите или отмените заказ в личном кабинете или через API.",
                        ev.material
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
                        "Order {id} (model \"{file}\", material {}) is priced at {price}.\nConfirm or cancel it in your account or through the API.",
                        ev.material
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

    /// The whole message, as sent.
    pub fn message(
        &self,
        to_email: &str,
        to_name: &str,
        lang: Lang,
        r: &Rendered,
    ) -> anyhow::Result<Message> {
        let to = Mailbox::new(
            Some(to_name.to_string()).filter(|n| !n.trim().is_empty()),
            to_email
                .parse()
                .map_err(|e| anyhow::anyhow!("'{to_email}' is not an e-mail address: {e}"))?,
        );
        // 8bit keeps the text readable in the file and in any mail tool; it
        // needs short lines, so the text is wrapped at spaces. A word too long
        // for a line lets lettre choose quoted-printable or base64 instead.
        let text = wrap(&r.body).replace('\n', "\r\n");
        let body = Body::new_with_encoding(text.clone(), ContentTransferEncoding::EightBit)
            .unwrap_or_else(|_| Body::new(text));
        let part = SinglePart::builder()
            .header(ContentType::TEXT_PLAIN)
            .body(body);
        Ok(Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(r.subject.clone())
            .header(ContentLanguage(lang.code().to_string()))
            .singlepart(part)?)
    }

    /// Sends one message; `name` names its file (unique per order, status and address).
    pub async fn send(&self, name: &str, message: Message) -> anyhow::Result<()> {
        match &self.transport {
            Transport::Files(dir) => {
                tokio::fs::create_dir_all(dir).await?;
                let path = dir.join(format!("{name}.eml"));
                // Written whole, then renamed: a reader never sees half a message.
                let tmp = dir.join(format!(".{name}.eml.tmp"));
                tokio::fs::write(&tmp, message.formatted()).await?;
                tokio::fs::rename(&tmp, &path).await?;
                Ok(())
            }
            Transport::Smtp(smtp) => {
                smtp.send(message).await?;
                Ok(())
            }
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
