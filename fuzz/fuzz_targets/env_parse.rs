//! Fuzzes the env-file parser: any input either is refused (not UTF-8) or renders back byte for
//! byte; checks, settings and the diff never panic; an edit changes only its line and reads back.
#![no_main]

use env_config::{CloudRegion, EnvFile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut file) = EnvFile::parse(data) else {
        assert!(std::str::from_utf8(data).is_err());
        return;
    };
    assert_eq!(file.render().as_bytes(), data);
    assert!(!file.is_modified());
    let _ = file.checks();
    let _ = file.settings();

    // A key taken from the input, so the fuzzer reaches existing lines.
    let key: String = file
        .entries()
        .next()
        .map(|e| e.key().to_owned())
        .unwrap_or_else(|| "FUZZ_KEY".to_owned());
    if let Ok(changed) = file.set(&key, "fuzz-value") {
        assert_eq!(file.get(&key).as_deref(), Some("fuzz-value"));
        let rendered = file.render();
        assert_eq!(changed, rendered.as_bytes() != data);
        let again = EnvFile::parse(rendered.as_bytes()).unwrap();
        assert_eq!(again.get(&key).as_deref(), Some("fuzz-value"));
        let _ = file.diff();
    }
    if file.enable_cloud_communication(&CloudRegion::Eu).is_ok() {
        let again = EnvFile::parse(file.render().as_bytes()).unwrap();
        assert!(again.settings().cloud_communication);
        let _ = file.diff();
        let _ = file.checks();
    }
});
