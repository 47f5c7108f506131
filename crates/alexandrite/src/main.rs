//! `alexandrite`: parses the command line, sets up logging and starts roles.

use alexandrite::telemetry::{self, Sink};
use alexandrite::{Application, Config};
use clap::{Parser, Subcommand};
use crm::accounts::{Accounts, NewUser};
use domain::Role;
use std::path::PathBuf;
use std::process::ExitCode;

/// Alexandrite: custom jewellery from a customer's 3D model to a shipped parcel.
#[derive(Parser)]
#[command(
    name = "alexandrite",
    version,
    about = "Alexandrite: custom jewellery from a customer's 3D model to a shipped parcel.",
    long_about = "Alexandrite: custom jewellery from a customer's 3D model to a shipped parcel.\n\nWith no command, `serve` runs every service in this process on the embedded profile \
(SQLite files, local object storage and a durable in-process bus under --data-dir)."
)]
struct Cli {
    /// The embedded profile's data directory (SQLite files, stored models, the bus).
    #[arg(long, global = true, env = "ALEXANDRITE_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// A TOML configuration file (see README: Configuration).
    #[arg(long, global = true, env = "ALEXANDRITE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the platform: every service in this process (the default command).
    Serve {
        /// Address to listen on, e.g. 127.0.0.1:8080 or 0.0.0.0:80.
        #[arg(long, env = "ALEXANDRITE_LISTEN", value_name = "ADDR")]
        listen: Option<String>,
        /// Serve /metrics on this address only (e.g. 127.0.0.1:9180), not on --listen.
        #[arg(long, value_name = "ADDR")]
        metrics_listen: Option<String>,
        /// What this process runs: everything, or one service (needs bus.url = amqp://…).
        #[arg(long, value_enum, default_value = "all")]
        role: alexandrite::app::Role,
    },
    /// Manage people: customers, operators, managers.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Manage API keys for B2B clients and operators' programs.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Analyse model files (STL, OBJ, PLY, 3MF) and, with a material, price them.
    Analyze {
        /// Model files.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Price in this material from the catalogue (e.g. AU585Y).
        #[arg(long, value_name = "CODE")]
        material: Option<String>,
        /// One JSON object per file, one per line.
        #[arg(long)]
        json: bool,
    },
    /// Dead letters: messages no consumer could handle.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Compare the CRM's and MES's views of every open order; exit 1 on any difference.
    Reconcile {
        /// Ask running `crm` and `mes` processes (gateway.crm_url, gateway.mes_url)
        /// instead of opening their databases.
        #[arg(long)]
        remote: bool,
        /// One JSON report.
        #[arg(long)]
        json: bool,
    },
    /// Fill the CRM's and MES's databases with realistic orders in every status
    /// (materials, weights, prices, histories), for load tests and demos.
    #[command(
        long_about = "Fill the CRM's and MES's databases (crm.database_url, mes.database_url) with N realistic \
orders in every status: about 60 % shipped, 5 % confirmed and waiting in the operators' queue, the rest on their \
way, cancelled, rejected or still being priced; every order with its material, metal weight, priced quote and a \
status history with times and actors, identical in both services (reconciliation finds no difference). Rows are \
written with multi-row INSERTs in transactions of 20,000 orders, CRM and MES in parallel: a million orders \
takes minutes on PostgreSQL. Orders are added to what is there; run it on empty databases for clean numbers."
    )]
    Seed {
        /// How many orders to create.
        #[arg(long, value_name = "N")]
        orders: u64,
        /// Random seed: the same seed gives the same orders (but fresh ids).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the effective configuration (secrets masked).
    Config,
}

#[derive(Subcommand)]
enum DlqCommand {
    /// List dead letters: queue, event, order, reason, deliveries.
    List {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Put dead letters back on their queues.
    Replay {
        /// The dead letter's id (from `dlq list`).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<i64>,
        /// Every dead letter.
        #[arg(long)]
        all: bool,
    },
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Create a person who can log in.
    Create {
        /// customer (shop or B2B), operator (production), manager (CRM back office).
        #[arg(long, value_parser = ["customer", "operator", "manager"])]
        role: String,
        /// Login; unique.
        #[arg(long)]
        email: String,
        /// At least 8 characters.
        #[arg(long)]
        password: String,
        /// Display name (default: the part of the email before '@').
        #[arg(long)]
        name: Option<String>,
        /// B2B organisation the customer belongs to (its members share orders).
        #[arg(long)]
        org: Option<String>,
        /// The language e-mail about their orders is written in.
        #[arg(long, value_parser = ["ru", "en"], default_value = "ru")]
        lang: String,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create an API key acting as this user; prints only the key, once.
    Create {
        /// The user the key acts as: a B2B organisation's customer, or an operator.
        #[arg(long)]
        email: String,
    },
}

fn load(cli: &Cli) -> anyhow::Result<Config> {
    let mut config = Config::load(cli.config.as_deref())?;
    if let Some(d) = &cli.data_dir {
        config.data_dir = d.clone();
    }
    Ok(config)
}

async fn accounts(config: &Config) -> anyhow::Result<Accounts> {
    adapters::private::create_dir(&config.data_dir)?;
    let db = adapters::Db::connect(&config.crm_database_url(), crm::migrations()).await?;
    Ok(Accounts::new(db))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = load(&cli)?;
    match cli.command.unwrap_or(Command::Serve {
        listen: None,
        metrics_listen: None,
        role: alexandrite::app::Role::All,
    }) {
        Command::Serve {
            listen,
            metrics_listen,
            role,
        } => {
            telemetry::init_for(Sink::Stdout, role.service())?;
            let mut config = config;
            if let Some(l) = listen {
                config.listen = l;
            }
            if let Some(l) = metrics_listen {
                config.metrics.listen = Some(l);
            }
            let app = Application::build_role(&config, role).await?;
            println!("{}", app.metrics_where());
            if !matches!(
                role,
                alexandrite::app::Role::All | alexandrite::app::Role::Gateway
            ) {
                println!(
                    "Alexandrite {role:?} role listening on http://{} (health: /health/ready)",
                    app.local_addr()
                );
                return app.run_until_stopped().await;
            }
            let url = config
                .public_url
                .clone()
                .unwrap_or_else(|| format!("http://{}", app.local_addr()));
            println!(
                "\nAlexandrite is running (embedded profile, data in {}):",
                config.data_dir.display()
            );
            println!("  shop            {url}/");
            println!("  my orders       {url}/account");
            println!("  operator queue  {url}/mes");
            println!("  CRM back office {url}/crm");
            println!("  B2B API         {url}/api/v1/  (Authorization: Bearer <key>)");
            match &app.demo {
                Some(d) => println!("\n{}", d.text),
                None => {
                    let f = config.data_dir.join("demo-credentials.txt");
                    if f.exists() {
                        println!("\nDemo accounts: see {}", f.display());
                    }
                }
            }
            println!();
            app.run_until_stopped().await
        }
        Command::Users {
            command:
                UsersCommand::Create {
                    role,
                    email,
                    password,
                    name,
                    org,
                    lang,
                },
        } => {
            telemetry::init(Sink::Stderr);
            let role = Role::parse(&role).expect("clap checked the role");
            let name =
                name.unwrap_or_else(|| email.split('@').next().unwrap_or(&email).to_string());
            let a = accounts(&config).await?;
            let user = a
                .create_user(NewUser {
                    email: &email,
                    name: &name,
                    password: &password,
                    role,
                    org: org.as_deref(),
                })
                .await?;
            a.set_language(user.user_id, &lang).await?;
            println!(
                "created {} {} ({})",
                user.role.as_str(),
                user.email,
                user.user_id
            );
            Ok(())
        }
        Command::Keys {
            command: KeysCommand::Create { email },
        } => {
            telemetry::init(Sink::Stderr);
            let key = accounts(&config).await?.create_key(&email).await?;
            println!("{key}");
            Ok(())
        }
        Command::Analyze {
            files,
            material,
            json,
        } => {
            telemetry::init(Sink::Stderr);
            alexandrite::analyze::run(&config, &files, material.as_deref(), json).await
        }
        Command::Dlq { command } => {
            telemetry::init(Sink::Stderr);
            let bus = alexandrite::app::admin_bus(&config).await?;
            match command {
                DlqCommand::List { json } => {
                    let letters = bus.dead_letters().await?;
                    for d in &letters {
                        if json {
                            println!("{}", serde_json::to_string(d)?);
                        } else {
                            println!(
                                "{:>5}  {:<13} {:<22} order {}  deliveries {}  {}",
                                d.id, d.queue, d.kind, d.order_id, d.deliveries, d.reason
                            );
                        }
                    }
                    if !json {
                        eprintln!("{} dead letter(s)", letters.len());
                    }
                    Ok(())
                }
                DlqCommand::Replay { id, all } => {
                    let ids: Vec<i64> = if all {
                        bus.dead_letters().await?.iter().map(|d| d.id).collect()
                    } else {
                        id.into_iter().collect()
                    };
                    let mut missing = vec![];
                    for id in &ids {
                        if !bus.replay(*id).await? {
                            missing.push(id.to_string());
                        }
                    }
                    println!("replayed {} dead letter(s)", ids.len() - missing.len());
                    anyhow::ensure!(
                        missing.is_empty(),
                        "no dead letter with id {}",
                        missing.join(", ")
                    );
                    Ok(())
                }
            }
        }
        Command::Reconcile { remote, json } => {
            telemetry::init(Sink::Stderr);
            use alexandrite::reconcile::{Source, run_once};
            let (crm, mes) = if remote {
                let key = web::IdentityKey::new(&config.identity_secret()?);
                (
                    Source::Remote {
                        url: config.gateway.crm_url.clone(),
                        key: key.clone(),
                    },
                    Source::Remote {
                        url: config.gateway.mes_url.clone(),
                        key,
                    },
                )
            } else {
                adapters::private::create_dir(&config.data_dir)?;
                let c =
                    adapters::Db::connect(&config.crm_database_url(), crm::migrations()).await?;
                let m =
                    adapters::Db::connect(&config.mes_database_url(), mes::migrations()).await?;
                (Source::Local(c), Source::Local(m))
            };
            let grace = std::time::Duration::from_secs(config.reconcile.grace_seconds);
            let report = run_once(&crm, &mes, grace).await?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                for d in &report.differences {
                    let show = |s: Option<domain::OrderStatus>| {
                        s.map_or("(unknown)".to_string(), |s| s.to_string())
                    };
                    println!("{}  crm {}  mes {}", d.order_id, show(d.crm), show(d.mes));
                }
                println!(
                    "{} open orders checked, {} differences",
                    report.checked,
                    report.differences.len()
                );
            }
            anyhow::ensure!(
                report.differences.is_empty(),
                "CRM and MES disagree about {} orders",
                report.differences.len()
            );
            Ok(())
        }
        Command::Seed { orders, seed, json } => {
            telemetry::init(Sink::Stderr);
            let report = alexandrite::seed::run(&config, orders, seed, |done, total| {
                if done % 100_000 == 0 || done == total {
                    eprintln!("seeded {done}/{total} orders");
                }
            })
            .await?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                for (status, n) in &report.by_status {
                    println!("{status:<22} {n:>9}");
                }
                println!(
                    "{} orders, {} history rows in each service, in {:.1} s ({:.0} orders/s)",
                    report.orders,
                    report.history_rows,
                    report.seconds,
                    report.orders as f64 / report.seconds.max(0.001)
                );
            }
            Ok(())
        }
        Command::Config => {
            println!("{}", config.show());
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = rt.block_on(run(cli));
    // Spans still buffered leave before the process does.
    telemetry::shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
