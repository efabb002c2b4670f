//! The client simulator end to end against a real deployment: every client
//! ends SUCCESS or PENDING TIMEOUT as the fleet allows, a client that gives
//! up cancels (no car is left allocated to it), and the audit holds.

mod support;
use support::rental::{assert_audit, bins, send};
use support::s;

use frota::rental::fleet::Class;
use frota::runtime::launch::{temp_dir, wait_until};
use frota::tools::rental::client_sim::{self, Outcome, Renter, SimConfig, Verdict};
use frota::tools::rental::cluster::RentalCluster;
use serde_json::json;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

#[test]
fn simulator_serves_waits_and_gives_up_cleanly() {
    let c = RentalCluster::start(bins(), &temp_dir("client-sim")).unwrap();
    let file = "Executivos\nexecutive\nEXECUTIVOS\nExecutivo\n\n# comment\nSUV\nbicicleta\n";
    let requests = client_sim::read_requests(file);
    assert_eq!(requests.len(), 6);
    let mut cfg = SimConfig::new(&c.addr("infodesk").to_string(), 1.0);
    cfg.clients = 6;
    // Two executive cars, four executive clients holding a car for 1.5 s
    // and waiting at most 0.4 s: two succeed, two give up and cancel.
    cfg.use_min = Duration::from_millis(1500);
    cfg.use_max = Duration::from_millis(1500);
    cfg.pending_wait = Duration::from_millis(400);
    cfg.check_every = Duration::from_millis(100);
    let done = AtomicUsize::new(0);
    let out = client_sim::run(&cfg, &requests, &done);
    let report = client_sim::report(&out);
    eprintln!("{report}");
    let count = |v: Verdict| out.iter().filter(|o| o.verdict == v).count();
    assert_eq!(count(Verdict::Success), 3, "{report}");
    assert_eq!(count(Verdict::PendingTimeout), 2, "{report}");
    assert_eq!(
        count(Verdict::Failure),
        1,
        "the unknown class fails: {report}"
    );
    assert!(report.contains("PENDÊNCIA NÃO RESOLVIDA (TIMEOUT_CALLBACK)"));
    assert!(report.contains("SUCESSO") && report.contains("FALHA"));
    let r = assert_audit(&c);
    assert_eq!(
        r.backup["free"], 14,
        "every car back, none allocated to a client who left"
    );
    assert_eq!(r.backup["waiting"], 0);
}

#[test]
fn frota_ctl_audit_rental_reports_ok_and_fails_without_a_backup() {
    let mut c = RentalCluster::start(bins(), &temp_dir("client-ctl")).unwrap();
    let ctl = env!("CARGO_BIN_EXE_frota-ctl");
    let run = |backup: &str, hb: &str| {
        std::process::Command::new(ctl)
            .args([
                "audit-rental",
                "--backup",
                backup,
                "--heartbeat",
                hb,
                "--timeout-ms",
                "2000",
            ])
            .output()
            .unwrap()
    };
    let (b, h) = (
        c.addr("backup").to_string(),
        c.addr("heartbeat").to_string(),
    );
    let out = run(&b, &h);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.starts_with("audit: PASS — 14 vehicles: 14 free"),
        "{text}"
    );
    c.kill("backup");
    let out = run(&b, &h);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("audit: FAIL"));
}

#[test]
fn frota_client_binary_runs_the_sample_file() {
    let c = RentalCluster::start(bins(), &temp_dir("client-bin")).unwrap();
    let sample = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/carros_solicitados.txt"
    );
    assert_eq!(
        client_sim::read_requests(&std::fs::read_to_string(sample).unwrap()).len(),
        31
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_frota-client"))
        .args([
            "--infodesk",
            &c.addr("infodesk").to_string(),
            "--file",
            sample,
        ])
        .args(["--time-scale", "0.01", "--seed", "7"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(
        text.lines().filter(|l| l.starts_with("cliente-")).count(),
        31,
        "{text}"
    );
    let total = text.lines().find(|l| l.starts_with("total")).unwrap_or("");
    let cols: Vec<&str> = total.split_whitespace().collect();
    // requests, SUCCESS, PENDING TIMEOUT, FAILURE: a pending client may
    // time out on a slow machine (1.2 s at this scale), none may fail.
    assert_eq!((cols[1], cols[4]), ("31", "0"), "{text}");
    assert_audit(&c);
}

/// The simulator claims a car it was called back for at the terminal that
/// called (`car_ready`'s `addr`). If that terminal crashed right after the
/// callback, before its own claim, nobody answers there: the client claims
/// through the info desk instead, at once — not at its next periodic check,
/// a minute away here — so the car is not stranded.
#[test]
fn claim_falls_back_to_the_info_desk_when_the_calling_terminal_died() {
    let mut c = RentalCluster::start(bins(), &temp_dir("client-claim-fallback")).unwrap();
    let mut cars = Vec::new();
    for i in 0..3 {
        let r = send(
            &c,
            "terminal-3",
            "rent",
            json!({"request_id": format!("fb-e{i}"), "class": "economy", "client": "x"}),
        )
        .expect("rent");
        cars.push(s(&r, "car"));
    }
    c.restart_with_env(
        "terminal-2",
        &[("FROTA_CRASH_AT", "terminal.callback.after".into())],
    )
    .unwrap();
    let mut cfg = SimConfig::new(&c.addr("infodesk").to_string(), 1.0);
    cfg.check_every = Duration::from_secs(60);
    cfg.pending_wait = Duration::from_secs(120);
    cfg.request_timeout = Duration::from_secs(5);
    let (out, took) = std::thread::scope(|sc| {
        let client = sc.spawn(|| {
            let renter = Renter::start(&cfg, "fb-client").expect("callback listener");
            let mut out = Outcome::new(0, "fb-client", "economy");
            let started = Instant::now();
            let r = renter.cycle("fb-1", Class::Economy, Duration::ZERO, &mut out);
            r.map(|()| (out, started.elapsed()))
        });
        assert!(
            wait_until(Duration::from_secs(20), Duration::from_millis(20), || {
                send(&c, "backup", "check_pending", json!({"request_id": "fb-1"}))
                    .is_ok_and(|b| s(&b, "status") == "waiting")
            }),
            "the client's rent is waiting"
        );
        // terminal-2 takes the return, calls the client back, and exits
        // before it claims the car.
        let r = send(
            &c,
            "terminal-2",
            "return",
            json!({"request_id": "fb-e0-back", "car": cars[0]}),
        )
        .expect("return");
        assert_eq!(s(&r, "handed_to"), "fb-1");
        client.join().unwrap().expect("the client's cycle")
    });
    let exit = c
        .proc_mut("terminal-2")
        .and_then(|p| p.wait_exit(Duration::from_secs(10)));
    assert_eq!(
        exit.and_then(|e| e.code()),
        Some(frota::runtime::crash::EXIT_CODE),
        "terminal-2 stopped at its crash point"
    );
    assert_eq!(
        (out.verdict, out.by_callback, out.car.as_deref()),
        (Verdict::Success, true, Some(cars[0].as_str())),
        "{out:?}"
    );
    assert!(
        took < Duration::from_secs(30),
        "claimed at once, not at the next check: {took:?}"
    );
    for (i, car) in cars.iter().enumerate().skip(1) {
        send(
            &c,
            "terminal-1",
            "return",
            json!({"request_id": format!("fb-e{i}-back"), "car": car}),
        )
        .expect("return");
    }
    let r = assert_audit(&c);
    assert_eq!(r.backup["free"], 14);
}
