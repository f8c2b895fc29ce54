//! Logging: one subscriber, pretty or JSON. Nothing here or anywhere else
//! logs PII or secrets: handlers log ids and counts, never values, and
//! request lines carry the route pattern, never the query string.

use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;

use crate::settings::{LogFormat, LogSettings};

/// The filter: `RUST_LOG` when set, else the configured level.
pub fn filter(settings: &LogSettings) -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.level))
}

/// A subscriber writing to `writer` in the configured format.
pub fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    writer: W,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Json => Box::new(
            registry.with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(writer),
            ),
        ),
        LogFormat::Pretty => {
            Box::new(registry.with(tracing_subscriber::fmt::layer().with_writer(writer)))
        }
    }
}

/// Installs the process-wide subscriber (stderr).
pub fn init(settings: &LogSettings) {
    let subscriber = subscriber(settings.format, filter(settings), std::io::stderr);
    // A second call (tests) keeps the first subscriber.
    let _ = tracing::subscriber::set_global_default(subscriber);
}
