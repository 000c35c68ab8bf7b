//! `anpr-stack`: the steps around `sam deploy` and `sam delete` that SAM cannot do by itself
//! (`scripts/deploy` runs `deploy-params`; docs/infra.md has the teardown runbook).
//!
//! - `anpr-stack deploy-params --web-origin https://app.example.com`: looks up the account's
//!   IoT data endpoint and prints the `--parameter-overrides` words for `sam deploy`;
//! - `anpr-stack teardown --policy anpr-camera --policy anpr-web-client [--delete-certificates]
//!   [--empty-bucket NAME [--delete-bucket]]`: detaches the stack's IoT policies from every
//!   target (else CloudFormation cannot delete them), and as asked deletes the cameras'
//!   certificates and things and empties/deletes the retained media bucket;
//! - `anpr-stack console-config --outputs outputs.json`: the web console's `config.json` from
//!   the stack's outputs (`scripts/deploy-console` runs it);
//! - `anpr-stack replay-plate-reads --dead-letter-queue-url URL --queue-url URL`: moves the
//!   plate reads that reached the dead-letter queue (alarm `{AppName}-plate-reads-dead-letters`)
//!   back to the plate-reads queue (stack outputs `PlateReadsDeadLetterQueueUrl`,
//!   `PlateReadsQueueUrl`); idempotent (docs/infra.md).

use anpr_provision::replay;
use anpr_provision::stack::{self, DeployParams, Teardown};
use anyhow::Context as _;
use clap::{Parser, Subcommand};

/// Deploy parameters and teardown of an ANPR stack (infra/template.yaml).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Region of the stack; default: the AWS CLI/SDK configuration.
    #[arg(long, global = true)]
    region: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print `Key=Value` parameter overrides for `sam deploy`, the IoT endpoint looked up.
    DeployParams {
        /// Origin of the web app (CORS of the API and of media downloads), e.g.
        /// https://app.example.com: required, the template has no default.
        #[arg(long)]
        web_origin: String,
        /// IoT data endpoint URL; default: looked up (DescribeEndpoint iot:Data-ATS).
        #[arg(long)]
        iot_data_endpoint: Option<String>,
        /// RulePrefix (IoT rule names): a second stack in the account needs its own.
        #[arg(long)]
        rule_prefix: Option<String>,
        /// AppName (names of the stack's resources): a second stack needs its own.
        #[arg(long)]
        app_name: Option<String>,
        /// MediaBucketName: e.g. to re-create a stack whose retained bucket still exists.
        #[arg(long)]
        media_bucket_name: Option<String>,
    },
    /// Print the web console's config.json for the stack whose outputs are in FILE
    /// (`aws cloudformation describe-stacks --query 'Stacks[0].Outputs'`).
    ConsoleConfig {
        /// The outputs, as JSON.
        #[arg(long)]
        outputs: std::path::PathBuf,
    },
    /// Detach the stack's IoT policies from all targets (run before `sam delete`).
    Teardown {
        /// IoT policy of the stack (output CameraPolicyName);
        /// repeat for each.
        #[arg(long = "policy", required = true)]
        policies: Vec<String>,
        /// Also deactivate and delete the certificates those policies were attached to, and
        /// the things left without a certificate: the cameras must be provisioned again.
        #[arg(long)]
        delete_certificates: bool,
        /// Delete every object of this bucket (output MediaBucketName): the media are lost.
        #[arg(long)]
        empty_bucket: Option<String>,
        /// After emptying it, delete the bucket (frees its name for a new stack).
        #[arg(long, requires = "empty_bucket")]
        delete_bucket: bool,
    },
    /// Move the plate-reads dead-letter queue's messages back to the plate-reads queue, once
    /// the cause of their failure is fixed (plate-ingest's log says it).
    ReplayPlateReads {
        /// Stack output PlateReadsDeadLetterQueueUrl.
        #[arg(long)]
        dead_letter_queue_url: String,
        /// Stack output PlateReadsQueueUrl.
        #[arg(long)]
        queue_url: String,
        /// Move at most this many messages (default: all).
        #[arg(long)]
        max: Option<usize>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(r) = &args.region {
        loader = loader.region(aws_config::Region::new(r.clone()));
    }
    let sdk = loader.load().await;
    let iot = aws_sdk_iot::Client::new(&sdk);
    match args.command {
        Command::ReplayPlateReads {
            dead_letter_queue_url,
            queue_url,
            max,
        } => {
            let sqs = aws_sdk_sqs::Client::new(&sdk);
            let done =
                replay::replay_plate_reads(&sqs, &dead_letter_queue_url, &queue_url, max).await?;
            println!("moved {} messages to {queue_url}", done.moved);
            if done.left_in_dead_letter_queue > 0 {
                println!(
                    "{} messages were sent but could not be deleted from the dead-letter queue: run again (storing a read twice leaves one item)",
                    done.left_in_dead_letter_queue
                );
            }
        }
        Command::ConsoleConfig { outputs } => {
            let text = std::fs::read_to_string(&outputs)
                .with_context(|| format!("reading {}", outputs.display()))?;
            let json: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", outputs.display()))?;
            let config = stack::console_config(&json)?;
            println!("{}", serde_json::to_string_pretty(&config)?);
        }
        Command::DeployParams {
            web_origin,
            iot_data_endpoint,
            rule_prefix,
            app_name,
            media_bucket_name,
        } => {
            // The cheap checks first: a wrong origin fails before any AWS call.
            stack::web_origin(&web_origin)?;
            let endpoint = match iot_data_endpoint {
                Some(e) => e,
                None => stack::data_endpoint_url(&iot)
                    .await
                    .context("looking up IotDataEndpoint (or pass --iot-data-endpoint)")?,
            };
            let params = DeployParams::new(
                endpoint,
                &web_origin,
                rule_prefix.as_deref(),
                app_name.as_deref(),
                media_bucket_name.as_deref(),
            )?;
            println!("{}", params.overrides().join(" "));
        }
        Command::Teardown {
            policies,
            delete_certificates,
            empty_bucket,
            delete_bucket,
        } => {
            let s3 = aws_sdk_s3::Client::new(&sdk);
            let what = Teardown {
                policies,
                delete_certificates,
                empty_bucket,
                delete_bucket,
            };
            let done = stack::teardown(&iot, &s3, &what).await?;
            for (policy, target) in &done.detached {
                println!("detached {policy} from {target}");
            }
            for c in &done.certificates_deleted {
                println!("deleted certificate {c}");
            }
            for t in &done.things_deleted {
                println!("deleted thing {t}");
            }
            if let Some(b) = &what.empty_bucket {
                println!("deleted {} objects of {b}", done.objects_deleted);
                if done.bucket_deleted {
                    println!("deleted bucket {b}");
                }
            }
            println!(
                "next: sam delete (the table, user pool and bucket are retained: docs/infra.md)"
            );
        }
    }
    Ok(())
}
