//! On a real pseudo-terminal, as an operator types: the token prompt does not echo, and
//! confirmations ask and take the answer.

use crate::common::{KEY30, Sandbox};

const OTHER_KEY: &str = "Zz3dEf6hIj9lMn2pQr5tUv8xYz1XyZ";

fn acme(s: &Sandbox) {
    s.ok(&[
        "org",
        "add",
        "--name",
        "Acme",
        "--plan",
        "enterprise-annually",
    ]);
}

/// The token typed (pasted) at the prompt never shows on the terminal: not as an echo, not in
/// the confirmation, not in the result.
#[test]
fn the_token_prompt_does_not_echo() {
    let s = Sandbox::new();
    acme(&s);
    let (code, screen) = s.run_on_terminal(
        &["billing-sync", "set-token", "--org", "Acme"],
        &[("then press Enter", KEY30)],
    );
    assert_eq!(code, 0, "{screen}");
    assert!(
        screen.contains("Stored the billing sync token …1bCd for Acme"),
        "{screen}"
    );
    assert!(!screen.contains(KEY30), "the token was shown: {screen}");
    assert!(
        !screen.contains(&KEY30[..8]),
        "part of the token was shown: {screen}"
    );
}

/// Replacing a stored token asks `[y/N]` on the terminal: "n" (or Enter) changes nothing,
/// "y" replaces it.
#[test]
fn replacing_a_token_asks_on_the_terminal() {
    let s = Sandbox::new();
    acme(&s);
    s.ok_stdin(
        &["billing-sync", "set-token", "--org", "Acme"],
        &format!("{KEY30}\n"),
    );
    let args = ["billing-sync", "set-token", "--org", "Acme"];
    let question = "replace it with …1XyZ? [y/N]";
    let (code, screen) =
        s.run_on_terminal(&args, &[("then press Enter", OTHER_KEY), (question, "n")]);
    assert_eq!(code, 1, "{screen}");
    assert!(
        screen.contains("Acme has the billing sync token …1bCd stored")
            && screen.contains("Cancelled: nothing changed."),
        "{screen}"
    );
    assert!(
        s.ok(&["billing-sync", "show", "--org", "Acme"])
            .contains("…1bCd")
    );

    let (code, screen) =
        s.run_on_terminal(&args, &[("then press Enter", OTHER_KEY), (question, "y")]);
    assert_eq!(code, 0, "{screen}");
    assert!(
        screen.contains("Stored the billing sync token …1XyZ"),
        "{screen}"
    );
    assert!(!screen.contains(OTHER_KEY), "{screen}");
    assert!(
        s.ok(&["billing-sync", "show", "--org", "Acme"])
            .contains("…1XyZ")
    );
}

/// Removing a member who sponsors asks first on a terminal.
#[test]
fn removing_a_sponsoring_member_asks_on_the_terminal() {
    let s = Sandbox::new();
    s.acme();
    s.ok(&[
        "sponsorship",
        "offer",
        "--org",
        "Acme",
        "--member",
        "alice@acme.example",
        "--email",
        "alice@home.example",
    ]);
    let args = ["member", "remove", "--org", "Acme", "alice@acme.example"];
    let question = "Remove them? [y/N]";
    let (code, screen) = s.run_on_terminal(&args, &[(question, "")]);
    assert_eq!(code, 1, "Enter means no: {screen}");
    assert!(screen.contains("offered to alice@home.example"), "{screen}");
    assert!(
        s.ok(&["member", "list", "--org", "Acme"])
            .contains("alice@acme.example")
    );
    let (code, screen) = s.run_on_terminal(&args, &[(question, "yes")]);
    assert_eq!(code, 0, "{screen}");
    assert!(screen.contains("Revoked 1 sponsorship(s)"), "{screen}");
    assert!(
        !s.ok(&["member", "list", "--org", "Acme"])
            .contains("alice@acme.example")
    );
}

/// On a terminal a sync shows a progress line from its start: with a cloud that takes seconds
/// to answer the first batch, the terminal is never blank meanwhile.
#[test]
fn a_sync_shows_progress_from_its_start() {
    let s = Sandbox::new();
    let mut log = String::new();
    let cloud = crate::common::setup_cloud(&s, true, &[], &mut log);
    s.alice_offers("Acme Corp");
    cloud.delay_syncs(1, 3000);
    let started = std::time::Instant::now();
    // The line must show while the first batch is still unanswered.
    let (code, screen) = s.run_on_terminal(&["sync"], &[("syncing Acme Corp", "")]);
    assert_eq!(code, 0, "{screen}");
    assert!(screen.contains("Acme Corp: sent 1, updated 1"), "{screen}");
    assert!(started.elapsed() >= std::time::Duration::from_secs(3));
}
