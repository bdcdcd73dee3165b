//! The rent-roll import's budget (issue #14: a 100,000-row import in under 5 s), measured on the
//! real hub run in-process (`Hub::start` on loopback, its real store on disk, durable commits)
//! over HTTP with the API token, as an integration would send it:
//!
//! ```text
//! cargo run --release -p locker-hub --example roll_bench [ROWS]
//! ```
//!
//! A Yardi-shaped export of ROWS residents (default 100,000: titles, a two-row header, a charge
//! line under every resident, a summary block) is made once, then timed:
//! 1. reading it alone (`locker_roll::read`, no hub);
//! 2. `POST /api/v1/roll?dry_run=true`: read, planned, answered;
//! 3. the first import: every row a new resident, applied in one durable step;
//! 4. the same file again: every row unchanged, nothing written but the import's record;
//! 5. the file with 1 % of the rows changed (a new email) and 1 % gone (off the roll).
//!
//! Each is request written → answer read; the answers' lists are cut to 10 entries (the counts
//! cover every row). Numbers and the machine: `docs/performance.md`, "Rent roll".

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use locker_app::notify::OutboxOnly;
use locker_hub::Hub;

fn main() {
    let rows: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::Builder::new()
        .prefix("locker-hub-roll-bench-")
        .tempdir()
        .expect("temporary directory");
    let path = dir.path().join("hub.toml");
    std::fs::write(
        &path,
        format!(
            "{}\n[import]\ncountry_code = \"1\"\n",
            locker_tests::base_config(dir.path())
        ),
    )
    .expect("write hub.toml");
    let config = locker_config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let hub = rt
        .block_on(Hub::start(config, Arc::new(OutboxOnly)))
        .unwrap_or_else(|e| panic!("the hub did not start: {e}"));
    let web = hub.listening().web;
    let token = std::fs::read_to_string(dir.path().join("data/api-token")).expect("api-token");
    let token = token.trim();

    let file = export(rows, |_| None, |_| false);
    println!(
        "rent roll: {rows} residents, {:.1} MB, Yardi layout",
        file.len() as f64 / 1e6
    );
    println!("{:<58} {:>10}", "step", "time");

    let options = locker_roll::Options {
        columns: locker_roll::Preset::Yardi.columns(),
        country_code: Some("1".into()),
        ..Default::default()
    };
    let t = Instant::now();
    let read = locker_roll::read(&file, &options).expect("the export reads");
    assert_eq!(read.rows.len(), rows);
    row("read the file (locker-roll alone)", t.elapsed());

    let post = |query: &str, body: &[u8]| -> (Duration, String) {
        let t = Instant::now();
        let answer = http(
            web,
            &format!("/api/v1/roll?layout=yardi&limit=10{query}"),
            token,
            body,
        );
        (t.elapsed(), answer)
    };
    let (took, answer) = post("&dry_run=true", &file);
    expect(&answer, "\"created\":", rows);
    row("dry run: read, plan, answer", took);
    let (took, answer) = post("", &file);
    expect(&answer, "\"created\":", rows);
    row("first import: every row created, one durable step", took);
    let (took, answer) = post("", &file);
    expect(&answer, "\"unchanged\":", rows);
    row("the same file again: nothing changes", took);
    let changed = export(
        rows,
        |i| (i % 100 == 7).then(|| format!("moved{i}@example.net")),
        |i| i % 100 == 9,
    );
    let (took, answer) = post("", &changed);
    expect(&answer, "\"updated\":", rows / 100);
    expect(&answer, "\"leaving\":", rows / 100);
    row("1 % changed, 1 % gone from the roll", took);

    rt.block_on(hub.stop());
}

fn row(name: &str, took: Duration) {
    println!("{name:<58} {:>8.0} ms", took.as_secs_f64() * 1e3);
}

/// The answer says `key` `n`.
fn expect(answer: &str, key: &str, n: usize) {
    let found = answer
        .split(key)
        .nth(1)
        .and_then(|s| s.split([',', '}']).next())
        .and_then(|s| s.trim().parse::<usize>().ok());
    assert_eq!(
        found,
        Some(n),
        "{key} in {}",
        &answer[..answer.len().min(2000)]
    );
}

/// A Yardi rent roll of `n` residents: `email(i)` overrides resident i's email, `gone(i)`
/// leaves them out.
fn export(
    n: usize,
    email: impl Fn(usize) -> Option<String>,
    gone: impl Fn(usize) -> bool,
) -> Vec<u8> {
    let mut out = String::with_capacity(n * 160);
    out.push_str("Rent Roll with Lease Charges,,,,,,,,,,,,,,\nBench Towers (bench),,,,,,,,,,,,,,\nAs Of = 12/01/2026,,,,,,,,,,,,,,\nMonth Year = 12/2026,,,,,,,,,,,,,,\n");
    out.push_str("Unit,Unit,Resident,Name,Market,Charge,Amount,Move In,Lease,Move Out,Email,Cell Phone,Balance,Other,Note\n");
    out.push_str(
        ",Type,,,Rent,Code,,,Expiration,,,,,,\nCurrent/Notice/Vacant Residents,,,,,,,,,,,,,,\n",
    );
    for i in 0..n {
        if gone(i) {
            continue;
        }
        let unit = format!("{}-{:03}", 1 + i / 1000, i % 1000);
        let mail = email(i).unwrap_or_else(|| format!("resident{i}@example.com"));
        out.push_str(&format!(
            "{unit},1BR,t{i:07},\"Surname{i}, Given{}\",1500.00,rent,1500.00,{}/{}/2025,2/28/2027,,{mail},(555) {:03}-{:04},0.00,,\n",
            i % 97,
            1 + i % 12,
            1 + i % 28,
            200 + i % 800,
            i % 10_000,
        ));
        out.push_str(",,,,,pet,25.00,,,,,,,,\n");
    }
    out.push_str("Total Bench Towers (bench),,,,,,,,,,,,,,\nSummary Groups,,,,,,,,,,,,,,\n");
    out.into_bytes()
}

/// One POST of `body` with the API token; the answer's body.
fn http(addr: SocketAddr, path: &str, token: &str, body: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(120))).ok();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nContent-Type: text/csv\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .expect("send");
    s.write_all(body).expect("send");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read");
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}\n{body}");
    body.to_owned()
}
