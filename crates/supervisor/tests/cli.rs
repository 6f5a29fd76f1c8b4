//! The `gatelog` binary's commands, run as a user would run them.

use std::process::Command;

fn gatelog() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_gatelog"));
    // Run in an empty folder so no config/default.toml or .env applies.
    let dir = std::env::temp_dir().join(format!("gatelog-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    c.current_dir(dir).env_remove("RUST_LOG");
    for (k, _) in std::env::vars() {
        if k.starts_with("GATELOG_")
            || k == "SUPABASE_KEY"
            || k == "SUPABASE_URL"
            || k == "DATABASE_URL"
        {
            c.env_remove(k);
        }
    }
    c
}

#[test]
fn config_prints_effective_values_and_redacts_secrets() {
    let out = gatelog()
        .arg("config")
        .env("SUPABASE_URL", "https://example.invalid")
        .env("SUPABASE_KEY", "made-up-secret-4f2a9c")
        .env(
            "GATELOG_AUTH__INGEST_KEYS",
            "ingest-secret-1,ingest-secret-2",
        )
        .env("GATELOG_DEDUP__WINDOW_SECS", "120")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("window_secs = 120"), "{text}");
    assert!(text.contains("url = \"https://example.invalid\""), "{text}");
    assert!(!text.contains("made-up-secret-4f2a9c"), "{text}");
    assert!(!text.contains("ingest-secret"), "{text}");
    assert_eq!(text.matches("[redacted]").count(), 3, "{text}");
}

#[test]
fn bad_config_stops_with_the_key_and_its_source() {
    let out = gatelog()
        .arg("config")
        .env("GATELOG_DEDUP__WINDOW_SECS", "five")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap().to_lowercase();
    assert!(
        err.contains("window_secs") && err.contains("environment"),
        "{err}"
    );

    let out = gatelog()
        .args(["--config", "/nonexistent/gatelog.toml", "config"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("/nonexistent/gatelog.toml"));

    let out = gatelog()
        .arg("config")
        .env("GATELOG_SERVER__BIND", "everywhere")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("server.bind"));
}

/// A value that parses but makes no sense names the layer that set it,
/// and for a value wrong only beside another, the layer of each.
#[test]
fn a_bad_value_names_the_layer_that_set_it() {
    let out = gatelog()
        .arg("config")
        .env("GATELOG_DEDUP__WINDOW_SECS", "0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("dedup.window_secs is set by environment variable GATELOG_DEDUP__WINDOW_SECS"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("g.toml");
    std::fs::write(&file, "[dedup]\nnear_miss_gap_secs = 200\n").unwrap();
    let out = gatelog()
        .arg("--config")
        .arg(&file)
        .arg("config")
        .env("GATELOG_DEDUP__WINDOW_SECS", "100")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains(&format!(
            "dedup.near_miss_gap_secs is set in TOML file {}",
            file.display()
        )) && err.contains(
            "dedup.window_secs is set by environment variable GATELOG_DEDUP__WINDOW_SECS"
        ),
        "{err}"
    );

    // A key left at its default says so; a key read by our own text
    // provider names its variable too.
    let out = gatelog()
        .arg("config")
        .env("GATELOG_SITE__ID", " ")
        .output()
        .unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("site.id is set by environment variable GATELOG_SITE__ID"),
        "{err}"
    );
    std::fs::write(&file, "[dedup]\nnear_miss_gap_secs = 400\n").unwrap();
    let out = gatelog()
        .arg("--config")
        .arg(&file)
        .arg("config")
        .output()
        .unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("dedup.window_secs is the built-in default"),
        "{err}"
    );
}

#[test]
fn unknown_keys_in_a_file_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("g.toml");
    std::fs::write(&file, "[dedup]\nwindow_sec = 10\n").unwrap();
    let out = gatelog()
        .arg("--config")
        .arg(&file)
        .arg("config")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("window_sec") && err.contains("g.toml"),
        "{err}"
    );
}

#[test]
fn serve_refuses_a_public_bind_without_keys() {
    let out = gatelog()
        .arg("serve")
        .env("GATELOG_SERVER__BIND", "0.0.0.0:0")
        .env(
            "GATELOG_STORE__PATH",
            std::env::temp_dir().join("gatelog-refuse.db"),
        )
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("without keys"), "{err}");
}

#[test]
fn serve_on_a_port_in_use_exits_naming_the_setting() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = gatelog()
        .arg("serve")
        .env("GATELOG_SERVER__BIND", addr.to_string())
        .env("GATELOG_STORE__PATH", dir.path().join("gatelog.db"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains(&format!("cannot listen on {addr} (server.bind)")),
        "{err}"
    );
    drop(taken);
}

#[test]
fn config_redacts_passwords_in_the_supabase_and_database_urls() {
    let out = gatelog()
        .arg("config")
        .env(
            "SUPABASE_URL",
            "https://svc:sb-made-up-password-91c@abc.example.invalid/base?apikey=sb-query-key-5d1",
        )
        .env("SUPABASE_KEY", "made-up-secret-4f2a9c")
        .env(
            "DATABASE_URL",
            "postgres://gatelog:pg-made-up-password-2468ace@db.example.invalid/gatelog",
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    for secret in [
        "sb-made-up-password-91c",
        "sb-query-key-5d1",
        "pg-made-up-password-2468ace",
        "made-up-secret-4f2a9c",
    ] {
        assert!(!text.contains(secret), "{secret} is printed:\n{text}");
    }
    // Where the URL points is still shown.
    assert!(
        text.contains("url = \"https://[redacted]@abc.example.invalid/base?[redacted]\""),
        "{text}"
    );

    // The same through gatelog's own variable names.
    let out = gatelog()
        .arg("config")
        .env(
            "GATELOG_SUPABASE__URL",
            "https://svc:sb-made-up-password-91c@abc.example.invalid",
        )
        .env(
            "GATELOG_POSTGRES__URL",
            "postgres://gatelog:pg-made-up-password-2468ace@db.example.invalid/gatelog",
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains("made-up-password"), "{text}");
    assert!(text.contains("abc.example.invalid"), "{text}");
}

#[test]
fn keys_and_names_from_the_environment_are_taken_as_written() {
    // figment reads environment values as TOML-like literals; these must
    // stay the text that was set.
    let out = gatelog()
        .arg("config")
        .env("GATELOG_AUTH__INGEST_KEYS", "12345")
        .env("GATELOG_AUTH__READ_KEYS", "0123456789,true")
        .env("GATELOG_AUTH__OPERATOR_KEYS", "kim:4711,0042")
        .env("GATELOG_SITE__ID", "007")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("id = \"007\""), "{text}");
    assert_eq!(text.matches("[redacted]").count(), 5, "{text}");
    assert!(!text.contains("4711"), "{text}");
}

#[test]
fn partners_and_the_locode_come_from_the_environment_and_are_checked() {
    let out = gatelog()
        .arg("config")
        .env("GATELOG_SITE__LOCODE", "KRPUS")
        .env(
            "GATELOG_PARTNERS",
            r#"[{name="MSC",owners=["MSCU","MEDU"],bgm_in=270}]"#,
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("locode = \"KRPUS\""), "{text}");
    assert!(text.contains("[[partners]]"), "{text}");
    assert!(text.contains("bgm_in = 270"), "{text}");
    // Defaults are shown as they apply.
    assert!(text.contains("association = \"SMDG20\""), "{text}");
    assert!(text.contains("bgm_out = 36"), "{text}");

    for (var, value, named) in [
        ("GATELOG_SITE__LOCODE", "KR-PUS", "site.locode"),
        (
            "GATELOG_PARTNERS",
            r#"[{name="MSC",owners=["M5CU"]}]"#,
            "partners[0].owners[0]",
        ),
        (
            "GATELOG_PARTNERS",
            r#"[{name="MSC"}]"#,
            "partners[0].owners",
        ),
        (
            "GATELOG_PARTNERS",
            r#"[{name="MSC",owners=["MSCU"],colour="red"}]"#,
            "colour",
        ),
    ] {
        let out = gatelog().arg("config").env(var, value).output().unwrap();
        assert!(!out.status.success(), "{var}={value}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(named), "{var}={value}: {err}");
    }
}
