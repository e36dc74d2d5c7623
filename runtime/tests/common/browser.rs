//! Opening a rendered report in a headless browser: shared by the report's
//! tests and the payments flagship's (which includes this file by path).

use std::path::Path;
use std::process::Command;

/// The browser a page is opened in: `CELLRT_BROWSER`, or Debian's
/// `chromium` (or another Chromium found on the path).
fn browser() -> Option<String> {
    if let Ok(browser) = std::env::var("CELLRT_BROWSER") {
        return Some(browser);
    }
    ["chromium", "chromium-browser", "google-chrome"].iter().find_map(|name| {
        let found = Command::new(name).arg("--version").output().ok()?;
        found.status.success().then(|| (*name).to_owned())
    })
}

/// Opens `page` in a headless browser and returns the DOM once its script
/// ran. Without a browser it says that it skipped and returns `None`, or
/// fails the test when `CELLRT_REQUIRE_BROWSER=1` (as `.ci/run` sets).
pub fn dump_dom(page: &Path) -> Option<String> {
    let Some(browser) = browser() else {
        let required = std::env::var("CELLRT_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "no headless browser found (chromium) and CELLRT_REQUIRE_BROWSER=1: install it \
             (apt-get install chromium) or set CELLRT_BROWSER to one"
        );
        eprintln!("SKIPPED: no headless browser found (apt-get install chromium): the report was not opened");
        return None;
    };
    let profile = page.with_file_name(format!(
        "{}.browser-profile",
        page.file_name().map_or("page".into(), |name| name.to_string_lossy())
    ));
    let output = Command::new(&browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("the browser runs");
    assert!(output.status.success(), "{browser} failed: {}", String::from_utf8_lossy(&output.stderr));
    Some(String::from_utf8_lossy(&output.stdout).into_owned())
}
