//! No module import cycle in any crate of the workspace (see `tests::modgraph`): a reader
//! follows each crate one way, from the modules that use to the modules they use. No root
//! needed; part of `cargo test --workspace`, so of scripts/test.sh and CI.

use std::path::Path;

#[test]
fn no_crate_has_a_module_import_cycle() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace");
    let mut found = Vec::new();
    let mut modules = 0;
    for package in ["wire", "jail", "zygote", "agent", "tests", "fuzz"] {
        for root in tests::modgraph::target_roots(&workspace.join(package)) {
            modules += tests::modgraph::modules(&root).len();
            let refs = tests::modgraph::references(&root);
            for cycle in tests::modgraph::cycles(&refs) {
                found.push(format!("{} ({}):\n{cycle}", package, root.display()));
            }
        }
    }
    // The walk found the crates (a wrong path would make this pass on nothing).
    assert!(
        modules > 100,
        "only {modules} modules found under {}",
        workspace.display()
    );
    assert!(
        found.is_empty(),
        "module import cycles:\n{}",
        found.join("\n")
    );
}
