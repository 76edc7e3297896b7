//! Namespaces: create, list, remove; `--ns` on the commands; PBS's on-disk layout and limits.

mod common;

use common::*;

fn names(run: &Run) -> Vec<String> {
    run.json()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["ns"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn create_list_and_limits() {
    let store = Store::new();
    store.run(["namespace", "create", "a"]).ok();
    store.run(["namespace", "create", "a/b"]).ok();
    store.run(["namespace", "create", "c"]).ok();
    assert!(store.path.join("ns/a/ns/b").is_dir());
    let all = store.run(["--output-format", "json", "namespace", "list"]);
    all.ok();
    assert_eq!(names(&all), ["", "a", "a/b", "c"]);
    let below = store.run(["--output-format", "json", "--ns", "a", "namespace", "list"]);
    assert_eq!(names(&below), ["a", "a/b"]);

    let parentless = store.run(["namespace", "create", "x/y"]);
    parentless.expect_code(6);
    assert!(parentless.single_error_line().contains("'x'"));
    store.run(["namespace", "create", "a"]).expect_code(2);
    store
        .run(["namespace", "create", "a/../etc"])
        .expect_code(2);
    let mut ns = String::from("a/b");
    for level in 3..=7 {
        ns.push_str(&format!("/l{level}"));
        store.run(["namespace", "create", &ns]).ok();
    }
    let deep = store.run(["namespace", "create", &format!("{ns}/l8")]);
    deep.expect_code(2);
    assert!(deep.single_error_line().contains("7 levels"));
}

#[test]
fn commands_work_inside_a_namespace() {
    let store = Store::new();
    store.run(["namespace", "create", "prod"]).ok();
    let data = random_bytes(5, CHUNK + 77);
    let path = store.write_file("disk.img", &data);
    let mut args = backup_args(&[img_spec("drive-scsi0", &path)], "100", T1);
    args.extend(["--ns".into(), "prod".into()]);
    store.run(&args).ok();
    assert!(store.path.join("ns/prod/vm/100").is_dir());

    // The root namespace does not see it; the namespace (flag or variable) does.
    assert!(store.snapshot_names(None).is_empty());
    let listed = store.run(["--ns", "prod", "--output-format", "json", "snapshots"]);
    listed.ok();
    assert_eq!(listed.json()[0]["snapshot"], snap("100", T1));
    let target = store.file("restored.img");
    let mut cmd = store.cmd();
    cmd.env("STOWAGE_NAMESPACE", "prod");
    run_cmd(
        cmd,
        [
            "restore".as_ref(),
            snap("100", T1).as_ref(),
            "drive-scsi0.img".as_ref(),
            target.as_os_str(),
        ],
        None,
    )
    .ok();
    assert_eq!(std::fs::read(&target).unwrap(), data);
    store.run(["--ns", "prod", "verify", "--all"]).ok();
    // From the root, --all reaches into namespaces below.
    let all = store.run(["--output-format", "json", "verify", "--all"]);
    all.ok();
    assert_eq!(all.json()["snapshots"][0]["ns"], "prod");

    let missing = store.run(["--ns", "nope", "snapshots"]);
    missing.expect_code(6);
    assert!(missing.single_error_line().contains("namespace 'nope'"));

    // Removal refuses while groups live there, unless asked to delete them.
    let refused = store.run(["namespace", "remove", "prod"]);
    refused.expect_code(2);
    assert!(refused.single_error_line().contains("vm/100"));
    store
        .run(["namespace", "remove", "prod", "--delete-groups"])
        .ok();
    assert!(!store.path.join("ns/prod").exists());
}
