//! The architecture, enforced: the dependency rules of ARCHITECTURE.md,
//! checked against `cargo metadata` on every test run.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;

/// Crates that do I/O or speak a wire format: never in the core.
const IO_CRATES: &[&str] = &[
    "actix-web",
    "actix-multipart",
    "actix-rt",
    "diesel",
    "diesel_migrations",
    "reqwest",
    "hyper",
    "tokio",
    "sqlx",
    "serde",
    "serde_json",
    "config",
];

const DOMAIN: &str = "mooring-domain";
const PORTS: &str = "mooring-ports";
const USECASES: &str = "mooring-usecases";
const APP: &str = "mooring-app";
const HTTP: &str = "mooring-http";
/// The back office: an inbound adapter like HTTP, over the use cases.
const BACKOFFICE: &str = "mooring-backoffice";
/// Inbound adapters drive the use cases; only they may depend on them.
const INBOUND: &[&str] = &[HTTP, BACKOFFICE];
/// Wire libraries: the AP's JSON, shared by the adapters that hear the AP.
/// They do no I/O and depend on the domain alone; only adapters use them.
const WIRE: &[&str] = &["mooring-apwire"];
/// Crates that serve tests and tooling only.
const SUPPORT: &[&str] = &[
    "mooring-testsupport",
    "mooring-apsim",
    "mooring-bench",
    "xtask",
];

#[derive(Debug)]
struct Edge {
    to: String,
    dev: bool,
}

/// `cargo metadata` of the workspace (its own crates only).
fn workspace_metadata() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("metadata is JSON")
}

/// Workspace crate → its declared dependencies.
fn workspace_graph() -> BTreeMap<String, Vec<Edge>> {
    let metadata = workspace_metadata();
    let packages = metadata["packages"].as_array().expect("packages");
    packages
        .iter()
        .map(|p| {
            let name = p["name"].as_str().expect("name").to_owned();
            let edges = p["dependencies"]
                .as_array()
                .expect("dependencies")
                .iter()
                .map(|d| Edge {
                    to: d["name"].as_str().expect("dependency name").to_owned(),
                    dev: d["kind"].as_str() == Some("dev"),
                })
                .collect();
            (name, edges)
        })
        .collect()
}

fn normal_deps<'a>(graph: &'a BTreeMap<String, Vec<Edge>>, krate: &str) -> BTreeSet<&'a str> {
    graph[krate]
        .iter()
        .filter(|e| !e.dev)
        .map(|e| e.to.as_str())
        .collect()
}

fn adapters(graph: &BTreeMap<String, Vec<Edge>>) -> Vec<&str> {
    graph
        .keys()
        .map(String::as_str)
        .filter(|c| {
            ![DOMAIN, PORTS, USECASES, APP].contains(c) && !SUPPORT.contains(c) && !WIRE.contains(c)
        })
        .collect()
}

#[test]
fn the_expected_crates_exist() {
    let graph = workspace_graph();
    for c in [
        DOMAIN,
        PORTS,
        USECASES,
        APP,
        HTTP,
        BACKOFFICE,
        "mooring-store",
    ] {
        assert!(graph.contains_key(c), "{c} is missing from the workspace");
    }
}

#[test]
fn the_domain_depends_on_no_workspace_crate_and_no_io_crate() {
    let graph = workspace_graph();
    let deps = normal_deps(&graph, DOMAIN);
    for d in &deps {
        assert!(
            !graph.contains_key(*d),
            "{DOMAIN} depends on workspace crate {d}"
        );
        assert!(
            !IO_CRATES.contains(d),
            "{DOMAIN} depends on I/O or wire crate {d}"
        );
    }
}

#[test]
fn ports_and_use_cases_know_only_the_core() {
    let graph = workspace_graph();
    for (krate, allowed) in [(PORTS, vec![DOMAIN]), (USECASES, vec![DOMAIN, PORTS])] {
        for d in normal_deps(&graph, krate) {
            if graph.contains_key(d) {
                assert!(allowed.contains(&d), "{krate} must not depend on {d}");
            }
            assert!(
                !IO_CRATES.contains(&d) || d == "tokio" && krate == USECASES,
                "{krate} depends on I/O crate {d}"
            );
        }
    }
}

#[test]
fn adapters_never_depend_on_each_other_or_on_the_app() {
    let graph = workspace_graph();
    let adapters = adapters(&graph);
    assert!(
        adapters.contains(&HTTP) && adapters.contains(&"mooring-store"),
        "{adapters:?}"
    );
    for adapter in &adapters {
        for d in normal_deps(&graph, adapter) {
            if !graph.contains_key(d) {
                continue;
            }
            let allowed = d == DOMAIN
                || d == PORTS
                || WIRE.contains(&d)
                || (d == USECASES && INBOUND.contains(adapter));
            assert!(allowed, "adapter {adapter} must not depend on {d}");
        }
    }
}

#[test]
fn the_back_office_reaches_data_only_through_the_use_cases() {
    let graph = workspace_graph();
    let deps = normal_deps(&graph, BACKOFFICE);
    assert!(deps.contains(USECASES), "{deps:?}");
    for forbidden in ["mooring-store", "diesel", "reqwest", HTTP] {
        assert!(
            !deps.contains(forbidden),
            "{BACKOFFICE} must not depend on {forbidden}"
        );
    }
}

#[test]
fn wire_libraries_know_only_the_domain_and_do_no_io() {
    let graph = workspace_graph();
    for wire in WIRE {
        assert!(graph.contains_key(*wire), "{wire} is missing");
        for d in normal_deps(&graph, wire) {
            if graph.contains_key(d) {
                assert_eq!(d, DOMAIN, "{wire} must not depend on {d}");
            }
            assert!(
                !IO_CRATES.contains(&d) || d == "serde" || d == "serde_json",
                "{wire} depends on I/O crate {d}"
            );
        }
    }
    let adapters = adapters(&graph);
    for (krate, edges) in &graph {
        let uses_wire = edges
            .iter()
            .any(|e| !e.dev && WIRE.contains(&e.to.as_str()));
        assert!(
            !uses_wire || adapters.contains(&krate.as_str()) || SUPPORT.contains(&krate.as_str()),
            "{krate} is not an adapter but uses a wire library"
        );
    }
}

#[test]
fn only_the_app_knows_all_and_nothing_depends_on_it() {
    let graph = workspace_graph();
    let app_deps = normal_deps(&graph, APP);
    for adapter in adapters(&graph) {
        assert!(
            app_deps.contains(adapter),
            "the app does not wire adapter {adapter}"
        );
    }
    for (krate, edges) in &graph {
        assert!(
            !edges.iter().any(|e| e.to == APP),
            "{krate} depends on the app"
        );
    }
}

#[test]
fn test_support_is_only_ever_a_dev_dependency() {
    let graph = workspace_graph();
    // Tooling may use tooling; nothing that ships may.
    for (krate, edges) in graph.iter().filter(|(k, _)| !SUPPORT.contains(&k.as_str())) {
        for e in edges {
            if SUPPORT.contains(&e.to.as_str()) {
                assert!(e.dev, "{krate} has {} as a normal dependency", e.to);
            }
        }
    }
}

/// The README's `cargo run --release` needs exactly one binary among the
/// default members: the server's.
#[test]
fn cargo_run_at_the_root_runs_the_server() {
    let metadata = workspace_metadata();
    let defaults: BTreeSet<&str> = metadata["workspace_default_members"]
        .as_array()
        .expect("default members")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let binaries: Vec<String> = metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter(|p| p["id"].as_str().is_some_and(|id| defaults.contains(id)))
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter(|t| {
            t["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bin"))
        })
        .filter_map(|t| t["name"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(binaries, ["mooring"], "the default members' binaries");
}
