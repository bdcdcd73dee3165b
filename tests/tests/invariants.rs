//! The architecture invariants of `docs/ARCHITECTURE.md`, checked on the source tree rather than
//! only written down: what each crate may depend on, that no crate's modules import each other
//! in a circle, and that wire formats (`json!`) and the system clock (`SystemTime::now`) appear
//! only in the modules that own them. These read files; they start nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The crates whose sources the checks read: (manifest directory, source directory).
const CRATES: [&str; 10] = [
    "hub",
    "hub/app",
    "hub/web",
    "hub/net",
    "hub/core",
    "hub/gate",
    "config",
    "drivers",
    "drivers/bus",
    "sync",
];

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// A file's code without its unit tests (from the first `#[cfg(test)] mod …` to the end of the
/// file, where this codebase writes them) and without comments.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let text = match text.find("#[cfg(test)]\nmod ") {
        Some(i) => &text[..i],
        None => &text[..],
    };
    text.lines()
        .map(|l| match l.find("//") {
            // Not inside a string: `"http://"` keeps its line (good enough for these checks).
            Some(i) if l[..i].matches('"').count() % 2 == 0 => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The `[dependencies]` (normal, not dev) of a crate's manifest.
fn dependencies(krate: &str) -> BTreeSet<String> {
    let manifest = root().join(krate).join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap_or_else(|e| panic!("{e}"));
    let mut deps = BTreeSet::new();
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            inside = line == "[dependencies]";
            continue;
        }
        if inside {
            if let Some((name, _)) = line.split_once('=') {
                let name = name.trim();
                if !name.is_empty() && !name.starts_with('#') {
                    deps.insert(name.to_owned());
                }
            }
        }
    }
    deps
}

/// The sans-IO core depends on nothing that does I/O or reads a clock; the application layer
/// knows no HTTP or MQTT library; the web crate reaches state only through the application.
#[test]
fn each_crate_depends_only_on_what_its_layer_allows() {
    let core: BTreeSet<&str> = [
        "serde",
        "serde_json",
        "thiserror",
        "hmac",
        "sha2",
        "data-encoding",
    ]
    .into();
    let extra: Vec<String> = dependencies("hub/core")
        .into_iter()
        .filter(|d| !core.contains(d.as_str()))
        .collect();
    assert!(
        extra.is_empty(),
        "locker-core gained {extra:?}: the core takes time and entropy as inputs and does no I/O; \
         if a pure library is really needed, add it to the allowed list here and in \
         docs/ARCHITECTURE.md"
    );
    for (krate, forbidden) in [
        (
            "hub/app",
            &[
                "axum",
                "rumqttc",
                "rumqttd",
                "locker-web",
                "locker-hub",
                "locker-drivers",
            ][..],
        ),
        (
            "hub/web",
            &[
                "rumqttc",
                "rumqttd",
                "locker-sync",
                "locker-drivers",
                "locker-hub",
                "redb",
            ][..],
        ),
        // The sender is an adapter like the web page: it reaches the outbox through the
        // application's services, never the store or the bus.
        (
            "hub/deliver",
            &[
                "rumqttc",
                "rumqttd",
                "axum",
                "locker-sync",
                "locker-drivers",
                "locker-web",
                "locker-hub",
                "redb",
            ][..],
        ),
        ("hub/core", &["tokio", "locker-config"][..]),
    ] {
        let deps = dependencies(krate);
        let bad: Vec<&&str> = forbidden.iter().filter(|f| deps.contains(**f)).collect();
        assert!(
            bad.is_empty(),
            "{krate} depends on {bad:?}, which its layer must not"
        );
    }
    // And no I/O slips into the core through std.
    for file in rust_files(&root().join("hub/core/src")) {
        let code = code(&file);
        for needle in [
            "std::fs",
            "std::net",
            "SystemTime",
            "Instant::now",
            "std::thread",
            "tokio",
        ] {
            assert!(
                !code.contains(needle),
                "{} uses {needle}: the core does no I/O and reads no clock",
                file.display()
            );
        }
    }
}

/// Top-level modules of a crate (a file or a directory under `src/`), each with its files.
fn modules(src: &Path) -> BTreeMap<String, Vec<PathBuf>> {
    let mut mods: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(src) else {
        return mods;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = p
            .file_stem()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        if p.is_dir() {
            mods.entry(name).or_default().extend(rust_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") && name != "lib" && name != "main" {
            mods.entry(name).or_default().push(p);
        }
    }
    mods
}

/// The names that follow `prefix` in `code` (`crate::engine::Job` → `engine`; `super::{a, b}`
/// → `a`, `b`).
fn referenced(code: &str, prefix: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find(prefix) {
        let before = rest[..i].chars().last();
        rest = &rest[i + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for name in group[..end].split(',') {
                let name: String = name
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                out.insert(name);
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            out.insert(name);
        }
    }
    out
}

/// Which top-level module uses which: `crate::x` anywhere in a module, and `super::x` in a
/// top-level file (where `super` is the crate root).
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mods = modules(src);
    let mut graph = BTreeMap::new();
    for (name, files) in &mods {
        let mut uses = BTreeSet::new();
        for f in files {
            let code = code(f);
            let mut names = referenced(&code, "crate::");
            if f.parent() == Some(src) {
                names.extend(referenced(&code, "super::"));
            }
            uses.extend(
                names
                    .into_iter()
                    .filter(|n| n != name && mods.contains_key(n)),
            );
        }
        graph.insert(name.clone(), uses);
    }
    graph
}

/// The groups of modules that use each other in a circle (strongly connected components with
/// more than one module), each sorted.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> BTreeSet<Vec<String>> {
    // Two modules are in one cycle when each reaches the other.
    let reach = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_owned()];
        while let Some(m) = todo.pop() {
            for n in graph.get(&m).into_iter().flatten() {
                if seen.insert(n.clone()) {
                    todo.push(n.clone());
                }
            }
        }
        seen
    };
    let reaches: BTreeMap<&String, BTreeSet<String>> =
        graph.keys().map(|m| (m, reach(m))).collect();
    let mut out = BTreeSet::new();
    for m in graph.keys() {
        let mut group: Vec<String> = graph
            .keys()
            .filter(|n| *n == m || (reaches[m].contains(*n) && reaches[*n].contains(m)))
            .cloned()
            .collect();
        group.sort();
        if group.len() > 1 {
            out.insert(group);
        }
    }
    out
}

/// No crate's modules import each other in a circle. The core's last cycle predates this check
/// and is listed, so the check fails if a new one appears or the listed one is broken up without
/// being taken off the list (the list only shrinks).
#[test]
fn no_crate_has_a_new_module_cycle() {
    let known: BTreeMap<&str, BTreeSet<Vec<String>>> = [(
        "hub/core",
        [
            // `impl Core` in cold.rs, and Core holding cold's state: cold.rs should become a
            // sub-state that knows nothing of its owner (quinn-proto's timers are the model).
            vec!["cold", "core"],
        ]
        .into_iter()
        .map(|g| g.into_iter().map(str::to_owned).collect())
        .collect(),
    )]
    .into();
    let mut problems = Vec::new();
    for krate in CRATES {
        let found = cycles(&module_graph(&root().join(krate).join("src")));
        let allowed = known.get(krate).cloned().unwrap_or_default();
        for c in found.difference(&allowed) {
            problems.push(format!("{krate}: modules {c:?} use each other in a circle"));
        }
        for c in allowed.difference(&found) {
            problems.push(format!(
                "{krate}: the known cycle {c:?} is gone: take it off the list in this test"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Inside a module that is a directory (`pages/`, `broker/`, `link/`, ...), the files do not use
/// each other in a circle either: a sibling reached by `super::x` or `crate::dir::x`.
fn submodule_graphs(src: &Path) -> Vec<(String, BTreeMap<String, BTreeSet<String>>)> {
    let mut out = Vec::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut files = Vec::new();
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
        if dir == src {
            continue; // the top level is `module_graph`'s
        }
        let path = dir
            .strip_prefix(src)
            .unwrap_or(&dir)
            .to_string_lossy()
            .replace(['/', '\\'], "::");
        let stem = |p: &Path| {
            p.file_stem()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned()
        };
        let nodes: BTreeSet<String> = files
            .iter()
            .map(|f| stem(f))
            .filter(|n| n != "mod")
            .collect();
        let mut graph = BTreeMap::new();
        for f in files.iter().filter(|f| stem(f) != "mod") {
            let name = stem(f);
            let code = code(f);
            let mut names = referenced(&code, "super::");
            names.extend(referenced(&code, &format!("crate::{path}::")));
            let uses = names
                .into_iter()
                .filter(|n| *n != name && nodes.contains(n))
                .collect();
            graph.insert(name, uses);
        }
        out.push((path, graph));
    }
    out
}

#[test]
fn no_module_directory_has_a_cycle_among_its_files() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for krate in CRATES {
        for (dir, graph) in submodule_graphs(&root().join(krate).join("src")) {
            checked += 1;
            for c in cycles(&graph) {
                problems.push(format!(
                    "{krate}/src/{dir}: files {c:?} use each other in a circle"
                ));
            }
        }
    }
    assert!(checked >= 4, "only {checked} module directories found");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// `json!` builds wire formats by hand, and `SystemTime::now` reads a clock that can jump: each
/// belongs only in the modules that own a wire format or a clock.
#[test]
fn json_and_the_system_clock_stay_where_they_belong() {
    // Files allowed to call `SystemTime::now`, and why.
    let clock: BTreeMap<&str, &str> = [
        (
            "hub/app/src/clock.rs",
            "the hub's clock, which the core and the engine read",
        ),
        (
            "hub/src/bank_certs.rs",
            "X.509 validity is wall-clock time by definition",
        ),
        (
            "drivers/src/adapter.rs",
            "an unlock's deadline arrives as Unix time on the bus",
        ),
        (
            "drivers/src/sim.rs",
            "a simulated controller, apart from the hub, seeds its noise",
        ),
        (
            "drivers/src/link/mod.rs",
            "the time of a bus's last error, for /healthz",
        ),
        (
            "drivers/src/modbus/link.rs",
            "the time of a bus's last error, for /healthz",
        ),
        (
            "sync/src/store.rs",
            "the store's maintenance (retention) is wall-clock months",
        ),
        (
            "sync/src/redb_store.rs",
            "names a damaged file set aside with the time",
        ),
    ]
    .into();
    // Files allowed to build JSON by hand (`json!`): none in the shell's production code; the
    // bus and HTTP payloads are types.
    let json: BTreeSet<&str> = BTreeSet::new();
    let mut problems = Vec::new();
    for krate in CRATES {
        for file in rust_files(&root().join(krate).join("src")) {
            let rel = file
                .strip_prefix(root())
                .unwrap_or(&file)
                .to_string_lossy()
                .replace("\\", "/");
            let code = code(&file);
            // Every way to read the wall clock: std's, and jiff's.
            let reads_clock = [
                "SystemTime::now",
                "UNIX_EPOCH.elapsed",
                "Timestamp::now",
                "Zoned::now",
            ]
            .iter()
            .find(|needle| code.contains(*needle));
            if let (Some(read), false) = (reads_clock, clock.contains_key(rel.as_str())) {
                problems.push(format!(
                    "{rel} reads {read}: use locker_app::clock::now() (or add the \
                     file, with the reason, to this test's list)"
                ));
            }
            if code.contains("json!") && !json.contains(rel.as_str()) {
                problems.push(format!(
                    "{rel} builds JSON with json!: give the payload a type next to its schema \
                     (locker-bus for MQTT, the web crate for HTTP)"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_cycle_finder_finds_a_cycle_and_the_reference_reader_reads_groups() {
    let g: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.into_iter().map(str::to_owned).collect()))
    .collect();
    let found = cycles(&g);
    assert_eq!(
        found,
        [vec!["a".to_owned(), "b".to_owned(), "c".to_owned()]].into()
    );
    let names = referenced(
        "use super::{ask, Web};\nuse crate::engine::Job; my_crate::x",
        "super::",
    );
    assert_eq!(names, ["ask".to_owned(), "Web".to_owned()].into());
    assert_eq!(
        referenced("use crate::engine::Job; my_crate::x", "crate::"),
        ["engine".to_owned()].into()
    );
}
