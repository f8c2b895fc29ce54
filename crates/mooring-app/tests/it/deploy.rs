//! The deployment files under `deploy/`, checked without Docker or a cluster:
//! every YAML file parses; the compose stack has its services; every variable
//! given to the Anchor Platform (AP) or to Mooring is one that side reads; the
//! settings both sides share agree; the Kubernetes manifests and the
//! Dockerfile have what running them needs.
//!
//! The AP side is checked against the AP's own default configuration of the
//! pinned version, kept verbatim in `deploy/compose/ap-defaults/`: the AP reads
//! the setting `a.b_c` from the variable `A_B_C`, and names its secrets
//! (`SECRET_…`) in that file's comments.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use mooring_app::Settings;
use mooring_app::settings::{AP_ENV, DEFAULTS};
use mooring_store::DatabaseUrl;
use serde::Deserialize;
use serde_yaml::Value;

/// The AP image both the compose stack and the Kubernetes manifests run.
const AP_IMAGE: &str = "stellar/anchor-platform:2.12.0";
/// That version's default configuration, verbatim.
const AP_DEFAULTS: &str =
    "deploy/compose/ap-defaults/ap-v2.12.0_24f2919215_anchor-config-default-values.yaml";

/// The variables Mooring reads by name in `crates/mooring-app/src/settings/raw.rs`:
/// its own two, and the AP's names where the setting is the same one
/// (`AP_ENV`). `MOORING__SECTION__KEY` names are checked against
/// `default.toml` instead.
const MOORING_ENV: &[&str] = &[
    "MOORING_CONFIG",
    "DATABASE_URL",
    "CALLBACK_API_AUTH_TYPE",
    "SECRET_CALLBACK_API_AUTH_SECRET",
    "CALLBACK_API_AUTH_API_KEY_HTTP_HEADER",
    "CALLBACK_API_AUTH_JWT_HTTP_HEADER",
    "ASSETS_TYPE",
    "ASSETS_VALUE",
    "PLATFORM_API_BASE_URL",
    "PLATFORM_SERVER_AUTH_TYPE",
    "PLATFORM_API_AUTH_TYPE",
    "SECRET_PLATFORM_API_AUTH_SECRET",
];

/// The settings the AP and Mooring share: each is one variable both read.
const SHARED: &[&str] = &[
    "CALLBACK_API_AUTH_TYPE",
    "SECRET_CALLBACK_API_AUTH_SECRET",
    "PLATFORM_API_BASE_URL",
    "PLATFORM_API_AUTH_TYPE",
    "PLATFORM_SERVER_AUTH_TYPE",
    "SECRET_PLATFORM_API_AUTH_SECRET",
    "ASSETS_TYPE",
    "ASSETS_VALUE",
];

// --- reading the files ---------------------------------------------------------

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
}

/// Every document of a YAML stream (empty documents left out).
fn yaml_docs(text: &str, what: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{what}: {e}")))
        .filter(|v| !v.is_null())
        .collect()
}

fn yaml(rel: &str) -> Value {
    serde_yaml::from_str::<Value>(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
}

/// `NAME=value` lines, in order; blank lines and `#` comments skipped.
fn env_file(rel: &str) -> Vec<(String, String)> {
    read(rel)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l
                .split_once('=')
                .unwrap_or_else(|| panic!("{rel}: not NAME=value: {l:?}"));
            (k.trim().to_owned(), v.trim().to_owned())
        })
        .collect()
}

fn dev_env() -> BTreeMap<String, String> {
    let pairs = env_file("deploy/compose/dev.env");
    let map: BTreeMap<_, _> = pairs.iter().cloned().collect();
    assert_eq!(map.len(), pairs.len(), "dev.env sets a variable twice");
    map
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for key in path {
        cur = cur
            .get(*key)
            .unwrap_or_else(|| panic!("no {} in the document", path.join(".")));
    }
    cur.as_str()
        .unwrap_or_else(|| panic!("{} is not a string", path.join(".")))
}

fn compose() -> Value {
    yaml("deploy/compose/docker-compose.yml")
}

fn compose_service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    compose
        .get("services")
        .and_then(|s| s.get(name))
        .unwrap_or_else(|| panic!("docker-compose.yml has no service {name:?}"))
}

/// The `environment` map of a compose service (empty when it has none).
fn compose_environment(service: &Value) -> BTreeMap<String, String> {
    let Some(env) = service.get("environment") else {
        return BTreeMap::new();
    };
    let map = env
        .as_mapping()
        .expect("environment is written as a map in docker-compose.yml");
    map.iter()
        .map(|(k, v)| {
            let value = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                other => panic!("environment value {other:?} is not a scalar"),
            };
            (k.as_str().expect("variable name").to_owned(), value)
        })
        .collect()
}

/// Every document of every Kubernetes manifest, by (kind, name).
fn k8s() -> BTreeMap<(String, String), Value> {
    let mut out = BTreeMap::new();
    let mut files = Vec::new();
    yaml_files(&root().join("deploy/k8s"), &mut files);
    for file in files {
        let what = file.display().to_string();
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{what}: {e}"));
        for doc in yaml_docs(&text, &what) {
            let kind = str_at(&doc, &["kind"]).to_owned();
            if kind == "Kustomization" {
                continue;
            }
            let name = str_at(&doc, &["metadata", "name"]).to_owned();
            let previous = out.insert((kind.clone(), name.clone()), doc);
            assert!(previous.is_none(), "two {kind} named {name}");
        }
    }
    out
}

fn k8s_object<'a>(all: &'a BTreeMap<(String, String), Value>, kind: &str, name: &str) -> &'a Value {
    all.get(&(kind.to_owned(), name.to_owned()))
        .unwrap_or_else(|| panic!("deploy/k8s has no {kind} {name}"))
}

/// A ConfigMap's `data` or a Secret's `stringData`, as strings.
fn k8s_data(object: &Value, field: &str) -> BTreeMap<String, String> {
    object
        .get(field)
        .and_then(Value::as_mapping)
        .unwrap_or_else(|| panic!("no {field}"))
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().expect("key").to_owned(),
                v.as_str()
                    .unwrap_or_else(|| panic!("{k:?}: values are quoted strings"))
                    .to_owned(),
            )
        })
        .collect()
}

/// The first container of a Deployment's or Job's pod template.
fn container(workload: &Value) -> &Value {
    workload
        .get("spec")
        .and_then(|s| s.get("template"))
        .and_then(|t| t.get("spec"))
        .and_then(|s| s.get("containers"))
        .and_then(|c| c.get(0))
        .expect("a container")
}

fn pod_spec(workload: &Value) -> &Value {
    workload
        .get("spec")
        .and_then(|s| s.get("template"))
        .and_then(|t| t.get("spec"))
        .expect("a pod template")
}

/// What a container's `env` list says, each value either literal or a reference.
fn container_env(c: &Value) -> BTreeMap<String, Value> {
    c.get("env")
        .and_then(Value::as_sequence)
        .map(|list| {
            list.iter()
                .map(|e| (str_at(e, &["name"]).to_owned(), e.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// A container's `env` resolved against the ConfigMaps and Secrets it names,
/// plus what its `envFrom` brings in.
fn resolved_env(all: &BTreeMap<(String, String), Value>, c: &Value) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for from in c
        .get("envFrom")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
    {
        if let Some(r) = from.get("configMapRef") {
            let cm = k8s_object(all, "ConfigMap", str_at(r, &["name"]));
            env.extend(k8s_data(cm, "data"));
        }
        if let Some(r) = from.get("secretRef") {
            let secret = k8s_object(all, "Secret", str_at(r, &["name"]));
            env.extend(k8s_data(secret, "stringData"));
        }
    }
    for (name, e) in container_env(c) {
        let value = if let Some(v) = e.get("value") {
            v.as_str()
                .expect("literal env values are strings")
                .to_owned()
        } else if let Some(r) = e.get("valueFrom").and_then(|v| v.get("configMapKeyRef")) {
            let cm = k8s_object(all, "ConfigMap", str_at(r, &["name"]));
            let key = str_at(r, &["key"]);
            k8s_data(cm, "data")
                .remove(key)
                .unwrap_or_else(|| panic!("{name}: the ConfigMap has no key {key}"))
        } else if let Some(r) = e.get("valueFrom").and_then(|v| v.get("secretKeyRef")) {
            let secret = k8s_object(all, "Secret", str_at(r, &["name"]));
            let key = str_at(r, &["key"]);
            k8s_data(secret, "stringData")
                .remove(key)
                .unwrap_or_else(|| panic!("{name}: the Secret has no key {key}"))
        } else {
            panic!("{name}: neither a value nor a ConfigMap/Secret reference")
        };
        env.insert(name, value);
    }
    env
}

// --- who reads a variable -------------------------------------------------------

/// The AP's `StringHelper.toPosixForm`: camelCase split, `.` and `-` to `_`,
/// upper case.
fn posix_form(key: &str) -> String {
    let mut out = String::new();
    let mut previous_lower = false;
    for ch in key.chars() {
        if ch.is_ascii_uppercase() && previous_lower {
            out.push('_');
        }
        previous_lower = ch.is_ascii_lowercase();
        out.push(match ch {
            '.' | '-' => '_',
            c => c.to_ascii_uppercase(),
        });
    }
    out
}

fn flatten(prefix: &str, v: &Value, out: &mut BTreeSet<String>) {
    match v.as_mapping() {
        Some(map) => {
            for (k, child) in map {
                let key = match k {
                    Value::String(s) => s.clone(),
                    other => serde_yaml::to_string(other)
                        .expect("a scalar key")
                        .trim()
                        .to_owned(),
                };
                let dotted = if prefix.is_empty() {
                    key
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&dotted, child, out);
            }
        }
        None => {
            out.insert(prefix.to_owned());
        }
    }
}

/// Every variable the pinned AP reads: the upper-snake form of each key of
/// its default configuration, and the secrets its comments name (as
/// `secret.a.b` or `SECRET_A_B`).
fn ap_env_names() -> BTreeSet<String> {
    let text = read(AP_DEFAULTS);
    let mut keys = BTreeSet::new();
    flatten("", &yaml(AP_DEFAULTS), &mut keys);
    let mut names: BTreeSet<String> = keys.iter().map(|k| posix_form(k)).collect();
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '.';
    for start in ["secret.", "SECRET_"] {
        for (i, _) in text.match_indices(start) {
            if text[..i].chars().next_back().is_some_and(word) {
                continue; // inside a longer name
            }
            let token: String = text[i..].chars().take_while(|c| word(*c)).collect();
            let token = token.trim_end_matches('.');
            if token.len() > start.len() {
                names.insert(posix_form(token));
            }
        }
    }
    names
}

/// Whether `default.toml` has `key` (set or commented out) in `[section]`.
fn default_toml_has(section: &str, key: &str) -> bool {
    let mut current = String::new();
    for line in DEFAULTS.lines().map(str::trim) {
        if line.starts_with('[') {
            // `[section]` or `[[section]]`, maybe followed by a comment.
            current = line
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned();
            continue;
        }
        let line = line.trim_start_matches('#').trim_start();
        if current == section
            && line
                .strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        {
            return true;
        }
    }
    false
}

fn mooring_reads(name: &str) -> bool {
    if MOORING_ENV.contains(&name) {
        return true;
    }
    let Some(path) = name.strip_prefix("MOORING__") else {
        return false;
    };
    let parts: Vec<String> = path.split("__").map(str::to_ascii_lowercase).collect();
    match parts.split_last() {
        Some((key, section)) if !section.is_empty() => default_toml_has(&section.join("."), key),
        _ => false,
    }
}

fn assert_read_by_someone(
    names: impl IntoIterator<Item = String>,
    ap: &BTreeSet<String>,
    what: &str,
) {
    let unread: Vec<String> = names
        .into_iter()
        .filter(|n| !ap.contains(n) && !mooring_reads(n))
        .collect();
    assert!(
        unread.is_empty(),
        "{what}: read neither by AP 2.12.0 nor by Mooring: {unread:?}"
    );
}

// --- Mooring's settings from a deployment's environment -------------------------

fn temp_file(content: &str, suffix: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new()
        .suffix(suffix)
        .tempfile()
        .expect("temp file");
    file.write_all(content.as_bytes()).expect("written");
    file
}

/// Loads Mooring's settings as the container would, with the files it would
/// find at `MOORING_CONFIG` and `ASSETS_VALUE` given from the repository.
fn load_settings(mut env: BTreeMap<String, String>, config: &Path, assets: &Path) -> Settings {
    env.insert("MOORING_CONFIG".into(), config.display().to_string());
    env.insert("ASSETS_VALUE".into(), assets.display().to_string());
    let env: HashMap<String, String> = env.into_iter().collect();
    Settings::load(&env).unwrap_or_else(|e| panic!("Mooring refuses this configuration: {e}"))
}

/// The asset ids (`stellar:CODE:ISSUER`, `iso4217:CODE`) of an AP 2.x
/// assets file, with their buy delivery methods.
fn asset_ids(assets: &Value) -> BTreeMap<String, BTreeSet<String>> {
    assets
        .get("assets")
        .and_then(Value::as_sequence)
        .expect("an AP 2.x assets: list")
        .iter()
        .map(|a| {
            let mut id = format!("{}:{}", str_at(a, &["schema"]), str_at(a, &["code"]));
            if let Some(issuer) = a.get("issuer").and_then(Value::as_str) {
                id = format!("{id}:{issuer}");
            }
            let methods = a
                .get("sep38")
                .and_then(|s| s.get("buy_delivery_methods"))
                .and_then(Value::as_sequence)
                .into_iter()
                .flatten()
                .map(|m| str_at(m, &["name"]).to_owned())
                .collect();
            (id, methods)
        })
        .collect()
}

fn usdc_distribution_account(assets: &Value) -> String {
    assets
        .get("assets")
        .and_then(Value::as_sequence)
        .expect("assets")
        .iter()
        .find(|a| a.get("code").and_then(Value::as_str) == Some("USDC"))
        .map(|a| str_at(a, &["distribution_account"]).to_owned())
        .expect("USDC in the assets file")
}

/// The pairs Mooring prices are between assets of the AP's file, with the
/// delivery methods the file offers.
fn assert_pairs_match_assets(settings: &Settings, assets: &Value) {
    let ids = asset_ids(assets);
    assert!(!settings.raw.pricing.pairs.is_empty(), "no pricing pairs");
    for pair in &settings.raw.pricing.pairs {
        assert!(
            ids.contains_key(&pair.sell_asset),
            "{} is not in the assets file",
            pair.sell_asset
        );
        let methods = ids
            .get(&pair.buy_asset)
            .unwrap_or_else(|| panic!("{} is not in the assets file", pair.buy_asset));
        for m in &pair.delivery_methods {
            assert!(
                methods.contains(&m.name),
                "{} delivery method {} is not among the assets file's {methods:?}",
                pair.buy_asset,
                m.name
            );
        }
    }
}

/// `http://host:port` → (host, port).
fn host_port(url: &str) -> (String, u16) {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("{url}: an http:// URL"));
    let authority = rest.split('/').next().unwrap_or(rest);
    let (host, port) = authority
        .split_once(':')
        .unwrap_or_else(|| panic!("{url}: the port is written"));
    (host.to_owned(), port.parse().expect("a port number"))
}

/// `postgres://user:password@host:port/db` → its parts.
fn postgres_parts(url: &str) -> (String, String, String, String) {
    let rest = url.strip_prefix("postgres://").expect("a postgres:// URL");
    let (userinfo, rest) = rest.split_once('@').expect("user and password in the URL");
    let (user, password) = userinfo.split_once(':').expect("a password in the URL");
    let (hostport, db) = rest.split_once('/').expect("a database in the URL");
    let db = db.split('?').next().unwrap_or(db);
    (user.into(), password.into(), hostport.into(), db.into())
}

// --- (a) YAML -------------------------------------------------------------------

#[test]
fn every_yaml_file_under_deploy_parses() {
    let mut files = Vec::new();
    yaml_files(&root().join("deploy"), &mut files);
    assert!(files.len() >= 10, "found only {files:?}");
    for file in &files {
        let what = file.display().to_string();
        let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{what}: {e}"));
        let docs = yaml_docs(&text, &what);
        assert!(!docs.is_empty(), "{what} holds no document");
    }
}

#[test]
fn the_ap_defaults_are_the_pinned_versions_verbatim_file() {
    let readme = read("deploy/compose/ap-defaults/README.md");
    let file = Path::new(AP_DEFAULTS)
        .file_name()
        .and_then(|f| f.to_str())
        .expect("file name");
    assert!(readme.contains(file), "the README names {file}");
    let names = ap_env_names();
    for known in [
        "CALLBACK_API_BASE_URL",
        "PLATFORM_SERVER_AUTH_TYPE",
        "SEP31_DEPOSIT_INFO_GENERATOR_TYPE",
        "EVENT_PROCESSOR_CALLBACK_API_REQUEST_ENABLED",
        "SECRET_CALLBACK_API_AUTH_SECRET",
        "SECRET_PLATFORM_API_AUTH_SECRET",
        "SECRET_DATA_PASSWORD",
        "SECRET_SEP10_SIGNING_SEED",
    ] {
        assert!(
            names.contains(known),
            "{known} is not read by the pinned AP"
        );
    }
    assert!(!names.contains("CALLBACK_API_BASE"), "only whole keys");
}

// --- (b) compose services -----------------------------------------------------------

#[test]
fn compose_has_the_sep31_guide_services_and_builds_mooring() {
    let compose = compose();
    for name in [
        "sep-server",
        "platform-server",
        "stellar-observer",
        "server",
        "db",
    ] {
        let service = compose_service(&compose, name);
        assert_eq!(
            service.get("env_file").and_then(Value::as_str),
            Some("dev.env"),
            "{name} reads dev.env"
        );
        assert!(
            service.get("profiles").is_none(),
            "{name} runs in every profile"
        );
    }
    for (name, flag) in [
        ("sep-server", "--sep-server"),
        ("platform-server", "--platform-server"),
        ("stellar-observer", "--stellar-observer"),
        ("event-processor", "--event-processor"),
    ] {
        let service = compose_service(&compose, name);
        assert_eq!(str_at(service, &["image"]), AP_IMAGE, "{name}");
        assert_eq!(str_at(service, &["command"]), flag, "{name}");
    }
    let server = compose_service(&compose, "server");
    assert_eq!(str_at(server, &["build", "context"]), "../..");
    assert_eq!(
        str_at(server, &["build", "dockerfile"]),
        "deploy/Dockerfile"
    );
    assert!(
        root()
            .join("deploy/compose")
            .join("../..")
            .join("deploy/Dockerfile")
            .is_file(),
        "the build context holds the Dockerfile"
    );
    for name in ["event-processor", "kafka"] {
        let profiles = compose_service(&compose, name)
            .get("profiles")
            .and_then(Value::as_sequence)
            .unwrap_or_else(|| panic!("{name} has profiles"));
        assert_eq!(profiles.as_slice(), [Value::from("events")], "{name}");
    }
    let image = str_at(compose_service(&compose, "db"), &["image"]);
    assert!(
        image.starts_with("postgres:16"),
        "db runs PostgreSQL 16, got {image}"
    );
}

// --- (c) every variable is read by someone -----------------------------------------

#[test]
fn mooring_env_is_what_the_raw_settings_read() {
    let source = read("crates/mooring-app/src/settings/raw.rs");
    for name in MOORING_ENV {
        assert!(
            source.contains(&format!("\"{name}\"")),
            "settings/raw.rs does not read {name}"
        );
    }
    for (name, _) in AP_ENV {
        assert!(MOORING_ENV.contains(name), "MOORING_ENV misses {name}");
    }
    assert!(mooring_reads("MOORING__PLATFORM__API"));
    assert!(mooring_reads("MOORING__CUSTODIAN__DISTRIBUTION_ACCOUNT"));
    assert!(mooring_reads("MOORING__PAYOUT__HTTP__URL"));
    assert!(!mooring_reads("MOORING__PLATFORM__APIS"));
    assert!(!mooring_reads("MOORING__SERVER__API"));
}

#[test]
fn every_compose_variable_is_read_by_the_ap_or_mooring() {
    let ap = ap_env_names();
    assert_read_by_someone(dev_env().into_keys(), &ap, "deploy/compose/dev.env");
    let compose = compose();
    for name in [
        "sep-server",
        "platform-server",
        "stellar-observer",
        "event-processor",
        "server",
    ] {
        let env = compose_environment(compose_service(&compose, name));
        assert_read_by_someone(env.into_keys(), &ap, &format!("environment of {name}"));
    }
}

#[test]
fn every_kubernetes_variable_is_read_by_the_ap_or_mooring() {
    let ap = ap_env_names();
    let all = k8s();
    for ((kind, name), object) in &all {
        let keys: Vec<String> = match kind.as_str() {
            // Keys with a dot are files (mooring.toml, assets.yaml), not variables.
            "ConfigMap" => k8s_data(object, "data")
                .into_keys()
                .filter(|k| !k.contains('.'))
                .collect(),
            "Secret" => k8s_data(object, "stringData").into_keys().collect(),
            "Deployment" | "Job" => container_env(container(object)).into_keys().collect(),
            _ => continue,
        };
        assert_read_by_someone(keys, &ap, &format!("{kind} {name}"));
    }
}

// --- (d) the AP and Mooring agree -------------------------------------------------

#[test]
fn compose_shared_settings_agree() {
    let env = dev_env();
    let ap = ap_env_names();
    for name in SHARED {
        assert!(ap.contains(*name), "the AP does not read {name}");
        assert!(MOORING_ENV.contains(name), "Mooring does not read {name}");
        assert!(env.contains_key(*name), "dev.env does not set {name}");
    }
    assert_eq!(env["CALLBACK_API_BASE_URL"], "http://server:8081");
    assert_eq!(env["PLATFORM_API_BASE_URL"], "http://platform-server:8085");
    let compose = compose();
    for url in ["CALLBACK_API_BASE_URL", "PLATFORM_API_BASE_URL"] {
        let (host, _) = host_port(&env[url]);
        compose_service(&compose, &host); // panics unless the host is a compose service
    }
    assert_eq!(
        env["PLATFORM_API_AUTH_TYPE"], env["PLATFORM_SERVER_AUTH_TYPE"],
        "the AP 2.x platform server enforces PLATFORM_SERVER_AUTH_TYPE, Mooring sends PLATFORM_API_AUTH_TYPE"
    );
    for (auth, secret) in [
        ("CALLBACK_API_AUTH_TYPE", "SECRET_CALLBACK_API_AUTH_SECRET"),
        ("PLATFORM_API_AUTH_TYPE", "SECRET_PLATFORM_API_AUTH_SECRET"),
    ] {
        assert_eq!(env[auth], "jwt", "{auth}");
        assert!(
            env[secret].len() >= 32,
            "{secret}: jwt secrets are 32 bytes or more"
        );
    }
    assert_ne!(
        env["SECRET_CALLBACK_API_AUTH_SECRET"], env["SECRET_PLATFORM_API_AUTH_SECRET"],
        "one secret per direction"
    );

    // The files named in dev.env are in config/, mounted at /config.
    for name in ["ASSETS_VALUE", "MOORING_CONFIG", "SEP1_TOML_VALUE"] {
        let file = env[name]
            .strip_prefix("/config/")
            .unwrap_or_else(|| panic!("{name} is under /config"));
        assert!(
            root().join("deploy/compose/config").join(file).is_file(),
            "{name}: config/{file} exists"
        );
    }
    for name in [
        "sep-server",
        "platform-server",
        "stellar-observer",
        "event-processor",
        "server",
    ] {
        let volumes = compose_service(&compose, name)
            .get("volumes")
            .and_then(Value::as_sequence)
            .unwrap_or_else(|| panic!("{name} mounts config/"));
        assert!(
            volumes.contains(&Value::from("./config:/config:ro")),
            "{name} mounts config/ at /config"
        );
    }

    // One PostgreSQL, two databases, the same credentials everywhere.
    let db = compose_environment(compose_service(&compose, "db"));
    let (user, password, hostport, database) = postgres_parts(&env["DATABASE_URL"]);
    assert_eq!(hostport, "db:5432");
    assert_eq!(env["DATA_SERVER"], "db:5432");
    assert_eq!(user, db["POSTGRES_USER"]);
    assert_eq!(password, db["POSTGRES_PASSWORD"]);
    assert_eq!(env["SECRET_DATA_USERNAME"], db["POSTGRES_USER"]);
    assert_eq!(env["SECRET_DATA_PASSWORD"], db["POSTGRES_PASSWORD"]);
    assert_ne!(
        env["DATA_DATABASE"], database,
        "the AP and Mooring have a database each"
    );
    let init = read("deploy/compose/config/postgres-init.sql");
    for name in [database.as_str(), env["DATA_DATABASE"].as_str()] {
        assert!(
            init.contains(&format!("CREATE DATABASE {name};")),
            "{name} is created"
        );
    }

    // Mooring accepts the stack's configuration, and reads what the AP reads.
    let config = root().join("deploy/compose/config");
    let settings = load_settings(
        env.clone(),
        &config.join("mooring.toml"),
        &config.join("assets.yaml"),
    );
    assert_eq!(settings.callback_auth.kind(), "jwt");
    assert_eq!(settings.platform.base_url, env["PLATFORM_API_BASE_URL"]);
    assert_eq!(
        settings.raw.platform.auth_type.as_str(),
        env["PLATFORM_API_AUTH_TYPE"]
    );
    assert_eq!(
        settings.raw.platform.api.as_str(),
        "rest",
        "AP 2.12.0 is served over REST"
    );
    assert_eq!(
        settings.server.port,
        host_port(&env["CALLBACK_API_BASE_URL"]).1
    );
    assert!(matches!(
        settings.database.url.clone(),
        DatabaseUrl::Postgres(_)
    ));
    let types = settings.customer_types.clone();
    assert!(types.contains("sep31-sender") && types.contains("sep31-receiver"));
    let assets = yaml("deploy/compose/config/assets.yaml");
    assert_pairs_match_assets(&settings, &assets);
    assert_eq!(
        settings.raw.custodian.distribution_account.as_deref(),
        Some(usdc_distribution_account(&assets).as_str()),
        "GET /unique_address hands out the assets file's distribution account"
    );
}

#[test]
fn kubernetes_shared_settings_agree() {
    let all = k8s();
    let mooring = k8s_object(&all, "Deployment", "mooring");
    let mooring_env = resolved_env(&all, container(mooring));
    let service_port = |name: &str| {
        k8s_object(&all, "Service", name)
            .get("spec")
            .and_then(|s| s.get("ports"))
            .and_then(|p| p.get(0))
            .and_then(|p| p.get("port"))
            .and_then(Value::as_u64)
            .unwrap_or_else(|| panic!("Service {name} has a port"))
    };
    for ap in ["sep-server", "platform-server", "stellar-observer"] {
        let deployment = k8s_object(&all, "Deployment", ap);
        let c = container(deployment);
        assert_eq!(str_at(c, &["image"]), AP_IMAGE, "{ap}");
        let env = resolved_env(&all, c);
        for name in SHARED {
            assert_eq!(
                env.get(*name),
                mooring_env.get(*name),
                "{ap} and Mooring read {name} alike"
            );
            assert!(env.contains_key(*name), "{ap} gets {name}");
        }
        let (host, port) = host_port(&env["CALLBACK_API_BASE_URL"]);
        assert_eq!(host, "mooring", "{ap} calls Mooring's Service");
        assert_eq!(u64::from(port), service_port("mooring"));
        let (host, port) = host_port(&env["PLATFORM_API_BASE_URL"]);
        assert_eq!(u64::from(port), service_port(&host));
        assert_eq!(
            env["PLATFORM_API_AUTH_TYPE"],
            env["PLATFORM_SERVER_AUTH_TYPE"]
        );
    }

    // The same assets as the compose stack.
    let files = k8s_data(
        k8s_object(&all, "ConfigMap", "anchor-platform-files"),
        "data",
    );
    let assets: Value = serde_yaml::from_str(&files["assets.yaml"]).expect("assets.yaml");
    assert_eq!(
        assets,
        yaml("deploy/compose/config/assets.yaml"),
        "compose and k8s assets"
    );

    // Mooring accepts it, with real secrets in place of the placeholders.
    let mut env = mooring_env.clone();
    for (name, value) in env.iter_mut() {
        if name.starts_with("SECRET_") {
            assert!(
                value.starts_with("REPLACE-ME"),
                "{name}: no real secret in the repository"
            );
            *value = format!("{name}-a-test-secret-of-32-bytes-or-more");
        }
        if name == "MOORING__PII__KEY" {
            assert_eq!(value, "REPLACE-ME", "no real key in the repository");
            *value = mooring_testsupport::TEST_PII_KEY.into();
        }
    }
    let toml =
        k8s_data(k8s_object(&all, "ConfigMap", "mooring-config"), "data")["mooring.toml"].clone();
    let config = temp_file(&toml, ".toml");
    let assets_file = temp_file(&files["assets.yaml"], ".yaml");
    let settings = load_settings(env, config.path(), assets_file.path());
    assert!(
        !settings.database.auto_migrate,
        "the Job migrates, not the replicas"
    );
    assert!(matches!(
        settings.database.url.clone(),
        DatabaseUrl::Postgres(_)
    ));
    assert_pairs_match_assets(&settings, &assets);
    assert_eq!(
        settings.raw.custodian.distribution_account.as_deref(),
        Some(usdc_distribution_account(&assets).as_str())
    );
}

// --- (e) Kubernetes -----------------------------------------------------------------

#[test]
fn the_mooring_deployment_runs_three_probed_replicas() {
    let all = k8s();
    let deployment = k8s_object(&all, "Deployment", "mooring");
    assert_eq!(
        deployment
            .get("spec")
            .and_then(|s| s.get("replicas"))
            .and_then(Value::as_u64),
        Some(3)
    );
    let c = container(deployment);
    for (probe, path) in [("livenessProbe", "/health"), ("readinessProbe", "/ready")] {
        let get = c
            .get(probe)
            .and_then(|p| p.get("httpGet"))
            .unwrap_or_else(|| panic!("an HTTP {probe}"));
        assert_eq!(str_at(get, &["path"]), path, "{probe}");
        assert_eq!(
            get.get("port").and_then(Value::as_u64),
            Some(8081),
            "{probe}"
        );
    }
    assert_eq!(str_at(c, &["resources", "limits", "memory"]), "128Mi");
    assert_eq!(str_at(c, &["resources", "requests", "memory"]), "32Mi");
    assert_eq!(
        c.get("securityContext")
            .and_then(|s| s.get("readOnlyRootFilesystem"))
            .and_then(Value::as_bool),
        Some(true)
    );
    assert_eq!(
        pod_spec(deployment)
            .get("securityContext")
            .and_then(|s| s.get("runAsNonRoot"))
            .and_then(Value::as_bool),
        Some(true)
    );
    let env = container_env(c);
    assert_eq!(
        env.get("MOORING__DATABASE__AUTO_MIGRATE")
            .and_then(|e| e.get("value"))
            .and_then(Value::as_str),
        Some("false")
    );
    assert!(mooring_reads("MOORING__DATABASE__AUTO_MIGRATE"));

    let job = k8s_object(&all, "Job", "mooring-migrate");
    let migrate = container(job);
    assert_eq!(migrate.get("args"), Some(&Value::from(vec!["migrate"])));
    assert_eq!(str_at(migrate, &["image"]), str_at(c, &["image"]));
    assert!(
        resolved_env(&all, migrate).contains_key("DATABASE_URL"),
        "the Job migrates DATABASE_URL"
    );
    let postgres = k8s_object(&all, "Service", "postgres");
    assert_eq!(str_at(postgres, &["spec", "type"]), "ExternalName");

    // kustomization.yaml lists every manifest.
    let kustomization = yaml("deploy/k8s/kustomization.yaml");
    let listed: BTreeSet<&str> = kustomization
        .get("resources")
        .and_then(Value::as_sequence)
        .expect("resources")
        .iter()
        .map(|r| r.as_str().expect("a file name"))
        .collect();
    let mut files = Vec::new();
    yaml_files(&root().join("deploy/k8s"), &mut files);
    let on_disk: BTreeSet<&str> = files
        .iter()
        .filter_map(|f| f.file_name().and_then(|n| n.to_str()))
        .filter(|n| *n != "kustomization.yaml")
        .collect();
    assert_eq!(
        listed, on_disk,
        "kustomization.yaml lists every manifest, and only those"
    );
}

// --- (f) Dockerfile --------------------------------------------------------------------

/// The Dockerfile's instructions (continuation lines joined, comments dropped),
/// as (INSTRUCTION, arguments).
fn dockerfile() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut pending = String::new();
    for line in read("deploy/Dockerfile").lines() {
        let trimmed = line.trim();
        if pending.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                pending.push_str(part);
                pending.push(' ');
            }
            None => {
                pending.push_str(trimmed);
                let (instruction, args) = pending
                    .split_once(char::is_whitespace)
                    .unwrap_or((pending.as_str(), ""));
                out.push((instruction.to_ascii_uppercase(), args.trim().to_owned()));
                pending.clear();
            }
        }
    }
    out
}

/// The arguments of every `name` instruction, in order.
fn args_of<'a>(instructions: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    instructions
        .iter()
        .filter(|(i, _)| i == name)
        .map(|(_, a)| a.as_str())
        .collect()
}

#[test]
fn the_dockerfile_is_pinned_non_root_and_health_checked() {
    let instructions = dockerfile();
    let all = |name: &str| args_of(&instructions, name);
    let froms = all("FROM");
    assert_eq!(froms.len(), 2, "a builder and a final stage");
    for from in &froms {
        let image = from.split_whitespace().next().expect("an image");
        let tag = image
            .rsplit_once(':')
            .map(|(_, t)| t)
            .unwrap_or_else(|| panic!("{image} has a tag"));
        assert!(
            tag != "latest" && tag.chars().any(|c| c.is_ascii_digit()),
            "{image}: pin a version"
        );
    }
    assert!(
        froms[0].starts_with("rust:"),
        "the official rust image builds"
    );
    assert!(
        all("RUN")
            .iter()
            .any(|r| r.contains("cargo build --release --locked -p mooring-app")),
        "the builder builds mooring-app from the lock file"
    );
    assert!(
        all("EXPOSE")
            .iter()
            .any(|e| e.split_whitespace().any(|p| p == "8081"))
    );
    let healthcheck = all("HEALTHCHECK");
    assert_eq!(healthcheck.len(), 1);
    assert!(healthcheck[0].contains("CMD") && healthcheck[0].contains("/health"));
    let user = *all("USER").last().expect("a USER");
    let uid = user.split(':').next().unwrap_or(user);
    assert!(
        uid != "root" && uid != "0" && !uid.is_empty(),
        "runs as {user}"
    );
    assert_eq!(all("ENTRYPOINT"), ["[\"/usr/local/bin/mooring\"]"]);
    assert_eq!(all("CMD"), ["[\"serve\"]"]);
    // Only the final stage's USER and CMD count: both come after the last FROM.
    let last_from = instructions
        .iter()
        .rposition(|(i, _)| i == "FROM")
        .expect("FROM");
    let user_at = instructions
        .iter()
        .rposition(|(i, _)| i == "USER")
        .expect("USER");
    assert!(user_at > last_from, "USER is set in the final stage");

    let ignore = read(".dockerignore");
    for entry in ["target/", ".git/", "data/"] {
        assert!(
            ignore.lines().any(|l| l.trim() == entry),
            ".dockerignore leaves out {entry}"
        );
    }
}
