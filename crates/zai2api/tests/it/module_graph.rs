//! The house rule "dependencies point down the road, never back up" (ARCHITECTURE §2), checked:
//! the import graph of `crates/zai2api/src` between files has no cycle. A file depends on another
//! when its non-test code names it through `crate::…` or `super::…`. The one knot the guide
//! allows, handlers ↔ app state, does not show at this grain (handlers name `http::state`, the
//! state names the chat service, nothing names the handlers but the router).

#![expect(
    clippy::unwrap_used,
    reason = "a test over the source tree fails loudly"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module path (`upstream::client`) → file text without its test module and comments.
fn modules() -> BTreeMap<String, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = BTreeMap::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(&root).unwrap().with_extension("");
            let mut parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if parts.last().is_some_and(|p| p == "mod") {
                parts.pop();
            }
            if parts == ["lib"] || parts == ["main"] {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            let code: String = code
                .lines()
                .map(|l| l.split("//").next().unwrap_or_default())
                .collect::<Vec<_>>()
                .join("\n");
            out.insert(parts.join("::"), code);
        }
    }
    out
}

fn edges(modules: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let crate_path =
        regex_lite::Regex::new(r"crate::([a-z_][a-z0-9_]*(?:::[a-z_][a-z0-9_]*)*)").unwrap();
    let super_path = regex_lite::Regex::new(r"\bsuper::([a-z_][a-z0-9_]*)").unwrap();
    let longest_module = |path: &[&str]| {
        (1..=path.len())
            .rev()
            .map(|k| path[..k].join("::"))
            .find(|candidate| modules.contains_key(candidate))
    };
    let mut graph = BTreeMap::new();
    for (name, code) in modules {
        let mut deps = BTreeSet::new();
        for m in crate_path.captures_iter(code) {
            let path: Vec<&str> = m[1].split("::").collect();
            deps.extend(longest_module(&path));
        }
        let parent: Vec<&str> = name.split("::").collect();
        let parent = &parent[..parent.len() - 1];
        for m in super_path.captures_iter(code) {
            let mut path = parent.to_vec();
            path.push(&m[1]);
            deps.extend(longest_module(&path).or_else(|| longest_module(parent)));
        }
        deps.remove(name);
        graph.insert(name.clone(), deps);
    }
    graph
}

/// The strongly connected components with more than one file (Tarjan).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Walk<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<Vec<String>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, v: &'a str) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.graph.get(v).into_iter().flatten() {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let lw = self.low[w];
                    let lv = self.low.get_mut(v).unwrap();
                    *lv = (*lv).min(lw);
                } else if self.on_stack.contains(w) {
                    let iw = self.index[w];
                    let lv = self.low.get_mut(v).unwrap();
                    *lv = (*lv).min(iw);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    component.push(w.to_owned());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !walk.index.contains_key(v.as_str()) {
            walk.visit(v);
        }
    }
    walk.found
}

#[test]
fn the_checker_finds_a_cycle() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.into_iter().map(str::to_owned).collect()))
    .collect();
    assert_eq!(cycles(&graph), vec![vec!["a", "b", "c"]]);
}

#[test]
fn the_source_tree_has_no_import_cycle() {
    let modules = modules();
    assert!(modules.contains_key("upstream::client") && modules.len() > 40);
    let graph = edges(&modules);
    // The reading works: the router names the handlers, the service names the pool.
    assert!(graph["app"].contains("api::openai::handlers"));
    assert!(graph["chat::service"].contains("pool"));
    let found = cycles(&graph);
    if !found.is_empty() {
        let detail: Vec<String> = found
            .iter()
            .map(|c| {
                let links: Vec<String> = c
                    .iter()
                    .map(|m| {
                        let inside: Vec<&str> = graph[m]
                            .iter()
                            .filter(|d| c.contains(d))
                            .map(String::as_str)
                            .collect();
                        format!("{m} → {}", inside.join(", "))
                    })
                    .collect();
                links.join("; ")
            })
            .collect();
        panic!("import cycles: {}", detail.join(" | "));
    }
}
