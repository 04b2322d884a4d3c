//! The classic Firehose use case: JSON click events generated in a loop and
//! sent to a delivery stream, one JSON document per line in the
//! destination objects.
//!
//! ```text
//! cargo run --release --example firehose_clicks                  # in-process emulator
//! cargo run --release --example firehose_clicks -- --endpoint https://firehose.us-east-1.amazonaws.com --delivery-stream clicks
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use rand::Rng;
use rand::seq::IndexedRandom;
use shardline::{Config, FirehoseFraming, Producer, UserRecord};
use shardline_emulator::{Emulator, EmulatorConfig};

#[derive(Parser, Debug)]
#[command(about = "Send JSON click events to a Firehose delivery stream")]
struct Args {
    /// Firehose endpoint; without one, an in-process emulator is started.
    #[arg(long)]
    endpoint: Option<String>,
    /// Delivery stream to send to.
    #[arg(long, default_value = "clicks")]
    delivery_stream: String,
    /// Number of events.
    #[arg(long, default_value_t = 20_000)]
    events: u64,
    /// AWS region (the default chain's region if omitted).
    #[arg(long)]
    region: Option<String>,
}

const WORDS: &[&str] = &[
    "Aster", "Kotlin", "Sapphire", "Birch", "Comet", "Delta", "Ember", "Fjord",
];
const MANUFACTURERS: &[&str] = &["LG", "Samsung", "Google", "Xiaomi", "OnePlus"];
const EVENTS: &[&str] = &["interest_service_click", "interest_view", "interest_share"];

/// One event shaped like the mobile-analytics events such scripts send.
fn click_event(index: u64, rng: &mut impl Rng) -> String {
    let user_id = format!(
        "{}-{}-{}-{}",
        WORDS.choose(rng).expect("non-empty"),
        WORDS.choose(rng).expect("non-empty"),
        WORDS.choose(rng).expect("non-empty"),
        rng.random_range(100..1000)
    );
    let device_id = format!("{:032x}", rng.random::<u128>());
    format!(
        concat!(
            "{{\"user_id\": \"{}\", \"app_version\": \"v1.5.16(90)\", \"device_id\": \"{}-{}-{}-{}-{}\", ",
            "\"device_manufacturer\": \"{}\", \"device_os\": \"Android\", \"event\": \"{}\", ",
            "\"interest_id\": {}, \"index\": {}, \"interest_service_id\": null, \"timestamp\": \"2019-04-30T07:30:{:02}Z\"}}"
        ),
        user_id,
        &device_id[0..8],
        &device_id[8..12],
        &device_id[12..16],
        &device_id[16..20],
        &device_id[20..32],
        MANUFACTURERS.choose(rng).expect("non-empty"),
        EVENTS.choose(rng).expect("non-empty"),
        rng.random_range(1000..1300),
        index,
        index % 60
    )
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let emulator = match &args.endpoint {
        Some(_) => None,
        None => Some(Emulator::start_in_background(
            EmulatorConfig::default().with_delivery_stream(&args.delivery_stream),
        )?),
    };
    // One JSON document per line in the destination, as analytics tools
    // reading the objects expect.
    let mut config = Config::new().firehose_framing(FirehoseFraming::Newline);
    if let Some(region) = &args.region {
        config = config.region(region);
    }
    config = match (&emulator, &args.endpoint) {
        (Some(emulator), _) => config
            .endpoint_url(emulator.endpoint())
            .region(args.region.as_deref().unwrap_or("us-east-1"))
            .region(args.region.as_deref().unwrap_or("us-east-1"))
            .static_credentials("example", "example", None),
        (None, Some(endpoint)) => config.endpoint_url(endpoint),
        (None, None) => unreachable!(),
    };
    let producer = Producer::firehose(config)?;

    let delivered = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut rng = rand::rng();
    for index in 0..args.events {
        let event = click_event(index, &mut rng);
        let (delivered, failed) = (delivered.clone(), failed.clone());
        producer.send_blocking_with_callback(
            &args.delivery_stream,
            // Firehose ignores partition keys; any non-empty one will do.
            UserRecord::new("click", event),
            Some(Duration::from_secs(30)),
            Box::new(move |result| {
                match result {
                    Ok(_) => delivered.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        eprintln!("event not delivered: {e}");
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }),
        )?;
    }
    producer.close_blocking(Some(Duration::from_secs(60)))?;
    let elapsed = started.elapsed().as_secs_f64();
    let metrics = producer.metrics();
    println!(
        "{} events delivered, {} failed in {elapsed:.2} s ({:.0} events/s), {} PutRecordBatch calls, {} throttled attempts",
        delivered.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        delivered.load(Ordering::Relaxed) as f64 / elapsed,
        metrics.totals.requests,
        metrics.totals.throttled
    );
    if let Some(emulator) = emulator {
        let records = emulator.delivered(&args.delivery_stream);
        let lines = records.iter().filter(|r| r.ends_with(b"\n")).count();
        println!(
            "the delivery stream holds {} records, {lines} newline-terminated",
            records.len()
        );
        if records.len() as u64 != args.events {
            std::process::exit(1);
        }
    }
    Ok(())
}
