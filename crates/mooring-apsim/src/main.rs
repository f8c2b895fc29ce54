//! `ap-simulator [--port 8085] [--v3] [--api-key KEY | --jwt SECRET]
//! [--events-to URL [--events-api-key KEY]]`: an Anchor Platform simulator
//! on loopback (see the crate docs), delivering events to `URL/event` when
//! given one.

use std::net::TcpListener;

use mooring_apsim::{EventSink, SimAuth, Simulator, deliver_events, serve};

/// An Anchor Platform simulator on loopback.
#[derive(Debug, clap::Parser)]
#[command(name = "ap-simulator")]
struct Args {
    #[arg(long, default_value_t = 8085)]
    port: u16,
    /// AP 3.x+: transactions start in `pending_receiver`, and the methods
    /// 3.0 removed are unknown.
    #[arg(long)]
    v3: bool,
    /// Require this `X-Api-Key` on the Platform API.
    #[arg(long, conflicts_with = "jwt")]
    api_key: Option<String>,
    /// Require HS256 bearer tokens signed with this secret.
    #[arg(long)]
    jwt: Option<String>,
    /// Deliver the AP's events to `URL/event`.
    #[arg(long, value_name = "URL")]
    events_to: Option<String>,
    /// The `X-Api-Key` the events carry.
    #[arg(long, requires = "events_to")]
    events_api_key: Option<String>,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = <Args as clap::Parser>::parse();
    let auth = match (args.api_key, args.jwt) {
        (Some(k), _) => SimAuth::ApiKey(k),
        (None, Some(s)) => SimAuth::Jwt(s),
        _ => SimAuth::None,
    };
    let sim = Simulator::new(args.v3);
    if let Some(url) = args.events_to {
        sim.send_events_to(EventSink {
            url,
            header: args.events_api_key.map(|k| ("X-Api-Key".to_owned(), k)),
        });
    }
    tokio::spawn(deliver_events(sim.clone()));
    let listener = TcpListener::bind(("127.0.0.1", args.port))?;
    println!(
        "ap-simulator listening on http://{}",
        listener.local_addr()?
    );
    let server = serve(listener, sim, auth)?;
    let handle = server.handle();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        handle.stop(true).await;
    });
    server.await
}
