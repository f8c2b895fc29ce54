//! `ap-simulator [--port 8085] [--v3] [--api-key KEY | --jwt SECRET]
//! [--events-to URL [--events-api-key KEY]]`: an Anchor Platform simulator
//! on loopback (see the crate docs), delivering events to `URL/event` when
//! given one.

use std::net::TcpListener;

use mooring_apsim::{EventSink, SimAuth, Simulator, deliver_events, serve};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let port = value("--port")
        .and_then(|p| p.parse().ok())
        .unwrap_or(8085u16);
    let auth = match (value("--api-key"), value("--jwt")) {
        (Some(k), _) => SimAuth::ApiKey(k),
        (None, Some(s)) => SimAuth::Jwt(s),
        _ => SimAuth::None,
    };
    let sim = Simulator::new(args.iter().any(|a| a == "--v3"));
    if let Some(url) = value("--events-to") {
        sim.send_events_to(EventSink {
            url,
            header: value("--events-api-key").map(|k| ("X-Api-Key".to_owned(), k)),
        });
    }
    tokio::spawn(deliver_events(sim.clone()));
    let listener = TcpListener::bind(("127.0.0.1", port))?;
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
