//! Typed configuration: defaults → optional TOML file → `ALEXANDRITE_*`
//! environment variables (`__` separates levels) → command-line flags.

use domain::price::PricingRules;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the HTTP server listens.
    pub listen: String,
    /// The embedded profile's files: SQLite databases, objects, the bus.
    pub data_dir: PathBuf,
    /// The address people use to reach the platform (printed at start).
    pub public_url: Option<String>,
    /// Secret the gateway signs caller identities with; generated into the data dir if unset.
    #[serde(skip_serializing)]
    pub identity_secret: Option<SecretString>,
    /// Mark the session cookie Secure (serve behind HTTPS).
    pub cookie_secure: bool,
    /// Create demo accounts on the first start with empty data.
    pub demo: bool,
    pub gateway: GatewaySection,
    pub crm: CrmSection,
    pub mes: MesSection,
    pub bus: BusSection,
    pub cache: CacheSection,
    pub pricing: PricingSection,
    pub notifier: NotifierSection,
    pub limits: LimitsSection,
    pub reconcile: ReconcileSection,
    /// How long an order may stay in each status (`sla.confirmed_seconds`, …).
    pub sla: domain::sla::SlaPolicy,
    pub telemetry: TelemetrySection,
    /// Where `/metrics` is served (see README: Observability).
    pub metrics: MetricsSection,
    /// Throttles of failed logins and API keys, and the trusted proxies
    /// (`abuse.login_account.failures`, `abuse.trusted_proxies`, …).
    pub abuse: adapters::throttle::AbusePolicy,
}

/// Who can read `/metrics` (`metrics.*`): never the public, unless it holds the token.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSection {
    /// A second listener serving only `/metrics`, e.g. `127.0.0.1:9180` (only
    /// Prometheus should reach it). Set, `/metrics` leaves the main listener.
    pub listen: Option<String>,
    /// `/metrics` on the main listener answers `Authorization: Bearer <token>`
    /// (otherwise 404, like any unknown path).
    #[serde(skip_serializing)]
    pub token: Option<SecretString>,
}

/// Traces and logs beyond the standard `OTEL_*` variables.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetrySection {
    /// A trace viewer's page for one trace, with `{trace_id}` in it, e.g.
    /// `http://jaeger:16686/trace/{trace_id}`: the order journey links there.
    pub trace_url: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReconcileSection {
    /// How often the CRM's and MES's views are compared (0 = never).
    pub interval_seconds: u64,
    /// Orders changed more recently than this are in flight, not different.
    pub grace_seconds: u64,
}

impl Default for ReconcileSection {
    fn default() -> Self {
        ReconcileSection {
            interval_seconds: 60,
            grace_seconds: 30,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewaySection {
    /// Where the `crm` role listens (for `--role gateway`).
    pub crm_url: String,
    /// Where the `mes` role listens (for `--role gateway`).
    pub mes_url: String,
    /// Where the `notifier` role listens (for `--role gateway`).
    pub notifier_url: String,
}

impl Default for GatewaySection {
    fn default() -> Self {
        GatewaySection {
            crm_url: "http://127.0.0.1:8081".into(),
            mes_url: "http://127.0.0.1:8082".into(),
            notifier_url: "http://127.0.0.1:8084".into(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CrmSection {
    /// Default: sqlite file `crm.sqlite` in the data dir.
    pub database_url: Option<String>,
    /// A PostgreSQL streaming replica of `database_url` for read-only queries
    /// (customers' order lists and pages), with read-your-writes. Default: none.
    pub database_replica_url: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MesSection {
    /// Default: sqlite file `mes.sqlite` in the data dir.
    pub database_url: Option<String>,
    /// A PostgreSQL streaming replica of `database_url` for read-only queries
    /// (the operators' queue), with read-your-writes. Default: none.
    pub database_replica_url: Option<String>,
    /// Default: the directory `objects` in the data dir; `s3://bucket[/prefix]` for S3.
    pub objects_url: Option<String>,
    /// S3 endpoint (default `AWS_ENDPOINT_URL`, else AWS itself).
    pub s3_endpoint: Option<String>,
    /// S3 region (default `AWS_REGION`, else us-east-1).
    pub s3_region: Option<String>,
    /// S3 access key id (default `AWS_ACCESS_KEY_ID`).
    pub s3_access_key_id: Option<String>,
    /// S3 secret access key (default `AWS_SECRET_ACCESS_KEY`).
    #[serde(skip_serializing)]
    pub s3_secret_access_key: Option<SecretString>,
    /// Plain HTTP to the S3 endpoint (default `AWS_ALLOW_HTTP`; implied by an http:// endpoint).
    pub s3_allow_http: Option<bool>,
    /// Lifetime of a presigned direct-upload URL, seconds (default 900).
    pub upload_url_expiry_secs: Option<u64>,
    /// Direct uploads larger than this many bytes are handed out as presigned
    /// multipart parts of this size (S3's minimum part is 5 MiB). Default 16 MiB.
    pub multipart_part_bytes: Option<u64>,
    /// How often MES removes the objects of direct uploads that expired unused,
    /// seconds (default 300; 0 never removes them).
    pub upload_sweep_secs: Option<u64>,
    /// How long after its expiry an unused direct upload is kept, seconds (default 600).
    pub upload_sweep_grace_secs: Option<u64>,
    /// Mount `GET /mes/api/queue/naive`, the naive baseline `scripts/bench-queue`
    /// compares against (OFFSET, no index, no cache). Never in production.
    pub bench_naive_queue: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BusSection {
    /// Default: the embedded bus, sqlite file `bus.sqlite` in the data dir.
    pub url: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheSection {
    /// `memory://` (in-process, the default) or `redis://host:6379/0`.
    pub url: String,
    /// Put before every key and channel, so deployments can share one Redis.
    pub prefix: String,
}

impl Default for CacheSection {
    fn default() -> Self {
        CacheSection {
            url: "memory://".into(),
            prefix: "alexandrite:".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PricingSection {
    /// Pricing jobs handled at once in this process.
    pub workers: usize,
    pub rules: PricingRules,
    /// Memory the pricing workers of this process may hold at once, MiB:
    /// jobs wait until their estimated need fits (pricing::admission).
    pub memory_budget_mib: u64,
    /// What each casting process can make (`pricing.casting.default`,
    /// `pricing.casting.groups.<code prefix>`; docs/pricing.md).
    pub casting: pricing::Casting,
}

/// E-mail and B2B webhooks (`notifier.*`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifierSection {
    /// Default: sqlite file `notifier.sqlite` in the data dir.
    pub database_url: Option<String>,
    /// `smtp://[user:password@]host[:port]`; unset writes each e-mail as an
    /// `.eml` file into `mail_dir`.
    #[serde(skip_serializing)]
    pub smtp_url: Option<SecretString>,
    /// Default: the directory `mail` in the data dir.
    pub mail_dir: Option<PathBuf>,
    /// The sender of every e-mail.
    pub mail_from: String,
    /// Let webhooks reach loopback, private and link-local addresses (never on
    /// a public deployment: it opens the door to SSRF).
    pub allow_private_webhooks: bool,
    /// Wait after a failed attempt, doubled after each further one (ms).
    pub retry_base_ms: u64,
    /// The longest wait between attempts (ms).
    pub retry_max_ms: u64,
    /// Attempts before a notification is abandoned.
    pub max_attempts: u32,
    /// How long a webhook endpoint has to answer (ms).
    pub webhook_timeout_ms: u64,
}

impl Default for NotifierSection {
    fn default() -> Self {
        NotifierSection {
            database_url: None,
            smtp_url: None,
            mail_dir: None,
            mail_from: "Alexandrite <noreply@alexandrite.local>".into(),
            allow_private_webhooks: false,
            retry_base_ms: 5_000,
            retry_max_ms: 3_600_000,
            max_attempts: 10,
            webhook_timeout_ms: 10_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsSection {
    pub max_upload_bytes: u64,
    pub max_triangles: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./data"),
            public_url: None,
            identity_secret: None,
            cookie_secure: false,
            demo: true,
            gateway: GatewaySection::default(),
            crm: CrmSection::default(),
            mes: MesSection::default(),
            bus: BusSection::default(),
            cache: CacheSection::default(),
            pricing: PricingSection::default(),
            notifier: NotifierSection::default(),
            limits: LimitsSection::default(),
            reconcile: ReconcileSection::default(),
            sla: domain::sla::SlaPolicy::default(),
            telemetry: TelemetrySection::default(),
            metrics: MetricsSection::default(),
            abuse: adapters::throttle::AbusePolicy::default(),
        }
    }
}

impl Default for PricingSection {
    fn default() -> Self {
        PricingSection {
            workers: 2,
            rules: PricingRules::default(),
            memory_budget_mib: pricing::admission::DEFAULT_BUDGET_MIB,
            casting: pricing::Casting::default(),
        }
    }
}

impl Default for LimitsSection {
    fn default() -> Self {
        LimitsSection {
            max_upload_bytes: 256 * 1024 * 1024,
            max_triangles: 2_000_000,
        }
    }
}

fn sqlite_in(dir: &Path, file: &str) -> String {
    adapters::db::sqlite_url(&dir.join(file))
}

/// The configuration's top-level keys (environment variables naming others are not ours).
const TOP_LEVEL: &[&str] = &[
    "listen",
    "data_dir",
    "public_url",
    "identity_secret",
    "cookie_secure",
    "demo",
    "gateway",
    "crm",
    "mes",
    "bus",
    "cache",
    "pricing",
    "notifier",
    "limits",
    "reconcile",
    "sla",
    "telemetry",
    "metrics",
    "abuse",
];

impl Config {
    /// Loads the layers; `file` is the optional TOML file.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Config> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(f) = file {
            anyhow::ensure!(
                f.exists(),
                "configuration file {} does not exist",
                f.display()
            );
            fig = fig.merge(Toml::file(f));
        }
        // The environment is shared with other tools (ALEXANDRITE_BIN, …): only the
        // variables naming a configuration key are read; a TOML file stays strict.
        let env = Env::prefixed("ALEXANDRITE_")
            .filter(|k| {
                let top = k
                    .as_str()
                    .split("__")
                    .next()
                    .unwrap_or("")
                    .to_ascii_lowercase();
                TOP_LEVEL.contains(&top.as_str())
            })
            .split("__");
        fig = fig.merge(env);
        let config: Config = fig
            .extract()
            .map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
        anyhow::ensure!(
            config.multipart_part_bytes() >= 5 << 20,
            "configuration: mes.multipart_part_bytes is {}, but S3 parts are at least 5 MiB (5242880)",
            config.multipart_part_bytes()
        );
        if let Some(t) = &config.metrics.token {
            anyhow::ensure!(
                t.expose_secret().trim().len() >= 16,
                "configuration: metrics.token must be at least 16 characters"
            );
        }
        if let Some(url) = &config.telemetry.trace_url {
            anyhow::ensure!(
                url.contains("{trace_id}"),
                "configuration: telemetry.trace_url must contain {{trace_id}} (got {url:?})"
            );
        }
        Ok(config)
    }

    pub fn crm_database_url(&self) -> String {
        self.crm
            .database_url
            .clone()
            .unwrap_or_else(|| sqlite_in(&self.data_dir, "crm.sqlite"))
    }
    pub fn mes_database_url(&self) -> String {
        self.mes
            .database_url
            .clone()
            .unwrap_or_else(|| sqlite_in(&self.data_dir, "mes.sqlite"))
    }
    pub fn notifier_database_url(&self) -> String {
        self.notifier
            .database_url
            .clone()
            .unwrap_or_else(|| sqlite_in(&self.data_dir, "notifier.sqlite"))
    }
    pub fn mail_dir(&self) -> PathBuf {
        self.notifier
            .mail_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("mail"))
    }
    pub fn objects_url(&self) -> String {
        self.mes
            .objects_url
            .clone()
            .unwrap_or_else(|| self.data_dir.join("objects").display().to_string())
    }
    /// The `mes.s3_*` settings; unset ones fall back to the `AWS_*` variables.
    pub fn s3_options(&self) -> adapters::objects::S3Options {
        adapters::objects::S3Options {
            endpoint: self.mes.s3_endpoint.clone(),
            region: self.mes.s3_region.clone(),
            access_key_id: self.mes.s3_access_key_id.clone(),
            secret_access_key: self
                .mes
                .s3_secret_access_key
                .as_ref()
                .map(|s| s.expose_secret().to_string()),
            allow_http: self.mes.s3_allow_http,
        }
    }
    pub fn multipart_part_bytes(&self) -> u64 {
        self.mes.multipart_part_bytes.unwrap_or(16 << 20)
    }

    /// How often expired, unused direct uploads are removed (zero: never).
    pub fn upload_sweep_every(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.mes.upload_sweep_secs.unwrap_or(300))
    }

    /// How long after its expiry an unused direct upload is kept.
    pub fn upload_sweep_grace(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.mes.upload_sweep_grace_secs.unwrap_or(600))
    }

    pub fn upload_url_expiry(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.mes.upload_url_expiry_secs.unwrap_or(900))
    }
    pub fn bus_url(&self) -> String {
        self.bus
            .url
            .clone()
            .unwrap_or_else(|| sqlite_in(&self.data_dir, "bus.sqlite"))
    }

    /// The identity secret: configured, or generated once into the data dir.
    pub fn identity_secret(&self) -> anyhow::Result<Vec<u8>> {
        if let Some(s) = &self.identity_secret {
            return Ok(s.expose_secret().as_bytes().to_vec());
        }
        let path = self.data_dir.join("identity.key");
        // Whoever reads the key can sign any identity: it is made readable by
        // this account only, from its first byte (and one made looser, by an
        // older version or by hand, is narrowed).
        let mut buf = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut buf);
        let hexed = hex::encode(buf);
        if adapters::private::write_new(&path, hexed.as_bytes())
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?
        {
            return Ok(hexed.into_bytes());
        }
        if adapters::private::narrow(&path)
            .map_err(|e| anyhow::anyhow!("narrowing {}: {e}", path.display()))?
        {
            tracing::warn!(file = %path.display(), "other accounts could read the identity key: narrowed to 0600 (consider a new key)");
        }
        let existing = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        let key = existing.trim();
        anyhow::ensure!(
            key.len() >= 32,
            "{} holds {} characters; an identity key needs at least 32 (remove the file to have one generated)",
            path.display(),
            key.len()
        );
        Ok(key.as_bytes().to_vec())
    }

    /// The effective configuration as JSON, secrets masked: every string goes
    /// through one masking function ([`mask`]), so a URL's password or a
    /// secret query parameter is hidden in whichever field it is, and every
    /// field named like a secret is hidden whole.
    pub fn show(&self) -> String {
        use serde_json::json;
        let mut v = match serde_json::to_value(self) {
            Ok(v) => v,
            Err(e) => return format!("(the configuration cannot be shown: {e})"),
        };
        v["crm"]["database_url"] = json!(self.crm_database_url());
        v["mes"]["database_url"] = json!(self.mes_database_url());
        v["mes"]["objects_url"] = json!(self.objects_url());
        v["notifier"]["database_url"] = json!(self.notifier_database_url());
        v["notifier"]["mail_dir"] = json!(self.mail_dir());
        v["bus"]["url"] = json!(self.bus_url());
        mask(&mut v);
        // The secrets serde never writes out: whether they are set, and from where.
        v["identity_secret"] = json!(if self.identity_secret.is_some() {
            MASK
        } else {
            "(generated in data_dir/identity.key)"
        });
        v["mes"]["s3_secret_access_key"] = json!(if self.mes.s3_secret_access_key.is_some() {
            MASK
        } else {
            "(AWS_SECRET_ACCESS_KEY)"
        });
        // The key id names the key (its first characters tell which one is
        // in use); with the rest someone holding the secret could use it.
        v["mes"]["s3_access_key_id"] = match &self.mes.s3_access_key_id {
            Some(id) => json!(format!("{}{MASK}", id.chars().take(4).collect::<String>())),
            None => json!("(AWS_ACCESS_KEY_ID)"),
        };
        v["notifier"]["smtp_url"] = match &self.notifier.smtp_url {
            Some(u) => json!(adapters::db::redact(u.expose_secret())),
            None => json!("(none: e-mail is written to mail_dir)"),
        };
        v["metrics"]["token"] = json!(if self.metrics.token.is_some() {
            MASK
        } else {
            "(none)"
        });
        serde_json::to_string_pretty(&v).unwrap_or_else(|e| format!("(unprintable: {e})"))
    }
}

/// What a masked secret is shown as.
const MASK: &str = "***";

/// Whether a configuration key names a secret (its whole value is masked).
fn secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "passwd",
        "passphrase",
        "secret",
        "token",
        "credential",
        "private_key",
    ]
    .iter()
    .any(|s| k.contains(s))
        // `api_key` and `…_api_key` are secrets; `abuse.api_key_address` is a limit.
        || k == "api_key"
        || k == "apikey"
        || k.ends_with("_api_key")
        || k == "pwd"
        || k.ends_with("_pwd")
}

/// Masks a configuration in place: a field named like a secret whole, and in
/// every other string the secrets a URL or a `key=value` list can carry
/// (user information passwords; `password`, `sslpassword`, `token`,
/// `secret_access_key`, … parameters), by [`adapters::db::redact`].
pub fn mask(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                if secret_key(k) && !val.is_null() {
                    *val = Value::String(MASK.into());
                } else {
                    mask(val);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask),
        Value::String(s) => *s = adapters::db::redact(s),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_apply_in_order_and_foreign_variables_are_ignored() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "a.toml",
                "listen = \"0.0.0.0:9000\"\n[pricing]\nworkers = 3\n",
            )?;
            jail.set_env("ALEXANDRITE_PRICING__WORKERS", "5");
            jail.set_env("ALEXANDRITE_LIMITS__MAX_TRIANGLES", "1000");
            jail.set_env("ALEXANDRITE_BIN", "/some/path");
            let c = Config::load(Some(Path::new("a.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(c.listen, "0.0.0.0:9000");
            assert_eq!(c.pricing.workers, 5, "the environment overrides the file");
            assert_eq!(c.limits.max_triangles, 1000);
            jail.create_file("bad.toml", "listne = \"x\"\n")?;
            let err = Config::load(Some(Path::new("bad.toml")))
                .unwrap_err()
                .to_string();
            assert!(err.contains("listne"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn the_trace_viewer_url_comes_from_the_file_or_environment_and_must_name_the_trace() {
        figment::Jail::expect_with(|jail| {
            assert_eq!(
                Config::load(None)
                    .map_err(|e| e.to_string())?
                    .telemetry
                    .trace_url,
                None
            );
            jail.create_file(
                "t.toml",
                "[telemetry]\ntrace_url = \"http://jaeger:16686/trace/{trace_id}\"\n",
            )?;
            let c = Config::load(Some(Path::new("t.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(
                c.telemetry.trace_url.as_deref(),
                Some("http://jaeger:16686/trace/{trace_id}")
            );
            jail.set_env(
                "ALEXANDRITE_TELEMETRY__TRACE_URL",
                "https://tempo.example/explore?trace={trace_id}",
            );
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(
                c.telemetry.trace_url.as_deref(),
                Some("https://tempo.example/explore?trace={trace_id}")
            );
            jail.set_env(
                "ALEXANDRITE_TELEMETRY__TRACE_URL",
                "http://jaeger:16686/trace/",
            );
            let err = Config::load(None).unwrap_err().to_string();
            assert_eq!(
                err,
                "configuration: telemetry.trace_url must contain {trace_id} (got \"http://jaeger:16686/trace/\")"
            );
            Ok(())
        });
    }

    #[test]
    fn the_metrics_section_comes_from_the_environment_and_its_token_is_masked() {
        figment::Jail::expect_with(|jail| {
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(c.metrics.listen, None);
            assert!(c.metrics.token.is_none());
            jail.set_env("ALEXANDRITE_METRICS__LISTEN", "127.0.0.1:9180");
            jail.set_env("ALEXANDRITE_METRICS__TOKEN", "prometheus-reads-this-1");
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(c.metrics.listen.as_deref(), Some("127.0.0.1:9180"));
            let shown = c.show();
            assert!(!shown.contains("prometheus-reads-this-1"), "{shown}");
            assert!(shown.contains("127.0.0.1:9180"), "{shown}");
            jail.set_env("ALEXANDRITE_METRICS__TOKEN", "short");
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.contains("metrics.token"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn the_notifier_section_comes_from_the_environment_and_its_secrets_are_masked() {
        figment::Jail::expect_with(|jail| {
            jail.set_env(
                "ALEXANDRITE_NOTIFIER__SMTP_URL",
                "smtp://mailer:hunter2@mail.test:2525",
            );
            jail.set_env("ALEXANDRITE_NOTIFIER__ALLOW_PRIVATE_WEBHOOKS", "true");
            jail.set_env("ALEXANDRITE_NOTIFIER__MAX_ATTEMPTS", "4");
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert!(c.notifier.allow_private_webhooks);
            assert_eq!(c.notifier.max_attempts, 4);
            assert_eq!(c.mail_dir(), c.data_dir.join("mail"));
            let shown = c.show();
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(
                shown.contains("smtp://mailer:***@mail.test:2525"),
                "{shown}"
            );
            assert!(shown.contains("notifier.sqlite"), "{shown}");
            Ok(())
        });
    }
}
