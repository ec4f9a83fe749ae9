//! SIGTERM starts the drain (own test binary: signal handlers are per process).

use std::time::{Duration, Instant};

#[test]
fn sigterm_triggers_shutdown() {
    let shutdown = net::Shutdown::new();
    shutdown.install_signal_handlers().expect("install handlers");
    assert!(!shutdown.is_triggered());
    signal_hook::low_level::raise(signal_hook::consts::SIGTERM).expect("raise");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !shutdown.is_triggered() {
        assert!(Instant::now() < deadline, "SIGTERM did not trigger the shutdown");
        std::thread::sleep(Duration::from_millis(5));
    }
}
