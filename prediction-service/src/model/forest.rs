//! A compact evaluator of ONNX-ML's `TreeEnsembleClassifier` (ai.onnx.ml opsets 1 to 3).
//!
//! The node's attributes become one flat array of nodes with child indices, and one array
//! of class weights per leaf. Evaluation walks each tree for a whole batch of rows (tree
//! outermost, so a tree stays in cache while every row goes through it) and sums the
//! leaves' weights per class, as the spec says; skl2onnx stores a random forest's leaf
//! probabilities divided by the number of trees, so the sum is scikit-learn's average.
//! The class is the first class with the highest score, as `numpy.argmax` picks it.
//!
//! What the spec allows but this evaluator does not implement is refused at load with an
//! error naming it: a `post_transform` other than NONE, non-zero `base_values`, string
//! class labels, the `*_as_tensor` attributes, the two-class single-score form.

use std::collections::HashMap;

use super::onnx::AttributeProto;

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("TreeEnsembleClassifier: {0}")]
pub struct ForestError(pub String);

fn fail<T>(message: impl Into<String>) -> Result<T, ForestError> {
    Err(ForestError(message.into()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Leq,
    Lt,
    Gte,
    Gt,
    Eq,
    Neq,
    Leaf,
}

impl Mode {
    fn parse(text: &[u8]) -> Result<Self, ForestError> {
        Ok(match text {
            b"BRANCH_LEQ" => Self::Leq,
            b"BRANCH_LT" => Self::Lt,
            b"BRANCH_GTE" => Self::Gte,
            b"BRANCH_GT" => Self::Gt,
            b"BRANCH_EQ" => Self::Eq,
            b"BRANCH_NEQ" => Self::Neq,
            b"LEAF" => Self::Leaf,
            other => {
                return fail(format!(
                    "unknown node mode {}",
                    String::from_utf8_lossy(other)
                ));
            }
        })
    }
}

/// One node: a comparison `x[feature] <mode> threshold` choosing a child, or a leaf whose
/// class weights start at `true_child * classes`.
#[derive(Debug, Clone, Copy)]
struct Node {
    mode: Mode,
    feature: u32,
    threshold: f32,
    true_child: u32,
    false_child: u32,
}

/// A node of the all-`BRANCH_LEQ` form: `children[x <= threshold]`. A leaf has an
/// infinite threshold and itself as both children.
#[derive(Debug, Clone, Copy)]
struct Step {
    feature: u32,
    threshold: f32,
    children: [u32; 2],
}

/// The form used when every split is `BRANCH_LEQ` (what skl2onnx writes): leaves loop to
/// themselves, so each walk takes its tree's depth in steps, a select instead of an
/// unpredictable branch each, and the walks of several rows overlap in the CPU. It gave
/// about 3x the rows per second of the general walk (docs/benchmarks-notes.md).
#[derive(Debug, Clone)]
struct LeqForm {
    steps: Vec<Step>,
    depths: Vec<u32>,
    leaf_of: Vec<u32>,
}

/// A tree ensemble ready to evaluate.
#[derive(Debug, Clone)]
pub struct Forest {
    features: usize,
    classes: Vec<i64>,
    roots: Vec<u32>,
    nodes: Vec<Node>,
    leaf_weights: Vec<f32>,
    leq: Option<LeqForm>,
}

/// The attributes of one node, by name.
struct Attributes<'a>(HashMap<&'a str, &'a AttributeProto>);

impl<'a> Attributes<'a> {
    fn new(list: &'a [AttributeProto]) -> Self {
        Self(list.iter().map(|a| (a.name.as_str(), a)).collect())
    }

    fn ints(&self, name: &str) -> Result<&'a [i64], ForestError> {
        match self.0.get(name) {
            Some(a) => Ok(&a.ints),
            None => fail(format!("attribute {name} is missing")),
        }
    }

    fn floats(&self, name: &str) -> &'a [f32] {
        self.0.get(name).map_or(&[], |a| &a.floats)
    }

    fn strings(&self, name: &str) -> &'a [Vec<u8>] {
        self.0.get(name).map_or(&[], |a| &a.strings)
    }

    fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }
}

impl Forest {
    /// Builds the evaluator from a `TreeEnsembleClassifier` node's attributes for inputs
    /// of `features` columns.
    pub fn from_attributes(list: &[AttributeProto], features: usize) -> Result<Self, ForestError> {
        let attrs = Attributes::new(list);
        refuse_unsupported(&attrs)?;
        let classes = attrs.ints("classlabels_int64s")?.to_vec();
        if classes.is_empty() {
            return fail("classlabels_int64s is empty");
        }
        let (index, nodes) = nodes(&attrs, features)?;
        let mut forest = Self {
            features,
            roots: roots(&index, &nodes)?,
            leaf_weights: Vec::new(),
            classes,
            nodes,
            leq: None,
        };
        forest.attach_weights(&attrs, &index)?;
        forest.check_trees()?;
        forest.leq = forest.leq_form();
        Ok(forest)
    }

    pub fn classes(&self) -> &[i64] {
        &self.classes
    }

    pub fn features(&self) -> usize {
        self.features
    }

    pub fn trees(&self) -> usize {
        self.roots.len()
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Class scores of every row (`rows.len() / features` rows, row-major), row-major
    /// into `scores` (`classes` per row).
    pub fn scores(&self, rows: &[f32], scores: &mut Vec<f64>) {
        let n = rows.len() / self.features;
        let k = self.classes.len();
        scores.clear();
        scores.resize(n * k, 0.0);
        if let Some(leq) = &self.leq {
            return self.leq_scores(leq, rows, scores);
        }
        for &root in &self.roots {
            for (row, out) in rows
                .chunks_exact(self.features)
                .zip(scores.chunks_exact_mut(k))
            {
                let leaf = self.leaf(root, row) * k;
                for (score, weight) in out.iter_mut().zip(&self.leaf_weights[leaf..leaf + k]) {
                    *score += f64::from(*weight);
                }
            }
        }
    }

    fn leq_scores(&self, leq: &LeqForm, rows: &[f32], scores: &mut [f64]) {
        let k = self.classes.len();
        for (&root, &depth) in self.roots.iter().zip(&leq.depths) {
            for (row, out) in rows
                .chunks_exact(self.features)
                .zip(scores.chunks_exact_mut(k))
            {
                let mut i = root as usize;
                for _ in 0..depth {
                    let step = &leq.steps[i];
                    let go_true = row[step.feature as usize] <= step.threshold;
                    i = step.children[usize::from(go_true)] as usize;
                }
                let leaf = leq.leaf_of[i] as usize * k;
                for (score, weight) in out.iter_mut().zip(&self.leaf_weights[leaf..leaf + k]) {
                    *score += f64::from(*weight);
                }
            }
        }
    }

    /// The all-`BRANCH_LEQ` form, when every split is one.
    fn leq_form(&self) -> Option<LeqForm> {
        if self
            .nodes
            .iter()
            .any(|n| !matches!(n.mode, Mode::Leq | Mode::Leaf))
        {
            return None;
        }
        let steps = (0u32..)
            .zip(&self.nodes)
            .map(|(i, n)| match n.mode {
                Mode::Leaf => Step {
                    feature: 0,
                    threshold: f32::INFINITY,
                    children: [i, i],
                },
                _ => Step {
                    feature: n.feature,
                    threshold: n.threshold,
                    children: [n.false_child, n.true_child],
                },
            })
            .collect();
        let leaf_of = self
            .nodes
            .iter()
            .map(|n| {
                if n.mode == Mode::Leaf {
                    n.true_child
                } else {
                    0
                }
            })
            .collect();
        let depths = self.roots.iter().map(|&root| self.depth(root)).collect();
        Some(LeqForm {
            steps,
            depths,
            leaf_of,
        })
    }

    /// The most splits on a walk from `root` to a leaf.
    fn depth(&self, root: u32) -> u32 {
        let (mut deepest, mut stack) = (0, vec![(root, 0u32)]);
        while let Some((i, depth)) = stack.pop() {
            let node = self.nodes[i as usize];
            if node.mode == Mode::Leaf {
                deepest = deepest.max(depth);
            } else {
                stack.extend([(node.true_child, depth + 1), (node.false_child, depth + 1)]);
            }
        }
        deepest
    }

    /// The index of the leaf `row` reaches from `root`. The tree was checked at build:
    /// every walk ends at a leaf.
    fn leaf(&self, root: u32, row: &[f32]) -> usize {
        let mut node = &self.nodes[root as usize];
        loop {
            let x = row[node.feature as usize];
            let t = node.threshold;
            let go_true = match node.mode {
                Mode::Leq => x <= t,
                Mode::Lt => x < t,
                Mode::Gte => x >= t,
                Mode::Gt => x > t,
                Mode::Eq => x == t,
                Mode::Neq => x != t,
                Mode::Leaf => return node.true_child as usize,
            };
            let next = if go_true {
                node.true_child
            } else {
                node.false_child
            };
            node = &self.nodes[next as usize];
        }
    }

    /// Index of the first highest score, as numpy's argmax picks it.
    pub fn argmax(scores: &[f64]) -> usize {
        let mut best = 0;
        for (i, score) in scores.iter().enumerate() {
            if *score > scores[best] {
                best = i;
            }
        }
        best
    }

    /// Gives each leaf its slot in `leaf_weights` and adds the class weights to it.
    fn attach_weights(
        &mut self,
        attrs: &Attributes<'_>,
        index: &NodeIndex,
    ) -> Result<(), ForestError> {
        let trees = attrs.ints("class_treeids")?;
        let ids = attrs.ints("class_nodeids")?;
        let class_ids = attrs.ints("class_ids")?;
        let weights = attrs.floats("class_weights");
        let m = trees.len();
        if ids.len() != m || class_ids.len() != m || weights.len() != m {
            return fail(
                "class_treeids, class_nodeids, class_ids and class_weights differ in length",
            );
        }
        let k = self.classes.len();
        if k == 2 && class_ids.iter().all(|&c| c == class_ids[0]) {
            return fail("the two-class single-score form is not supported");
        }
        let mut leaves = 0u32;
        for node in self.nodes.iter_mut().filter(|n| n.mode == Mode::Leaf) {
            node.true_child = leaves;
            leaves += 1;
        }
        self.leaf_weights = vec![0.0; leaves as usize * k];
        for i in 0..m {
            let Some(&at) = index.get(&(trees[i], ids[i])) else {
                return fail(format!(
                    "class weight {i} names unknown node {}/{}",
                    trees[i], ids[i]
                ));
            };
            let node = self.nodes[at as usize];
            let class = usize::try_from(class_ids[i]).ok().filter(|&c| c < k);
            let (Mode::Leaf, Some(class)) = (node.mode, class) else {
                return fail(format!("class weight {i} is not on a leaf or has no class"));
            };
            if !weights[i].is_finite() {
                return fail(format!("class weight {i} is not finite"));
            }
            self.leaf_weights[node.true_child as usize * k + class] += weights[i];
        }
        Ok(())
    }

    /// Every tree is a tree: each node reached once from its root, every walk ends.
    fn check_trees(&self) -> Result<(), ForestError> {
        let mut seen = vec![false; self.nodes.len()];
        for &root in &self.roots {
            let mut stack = vec![root];
            while let Some(i) = stack.pop() {
                if std::mem::replace(&mut seen[i as usize], true) {
                    return fail(format!("node {i} is reached twice (not a tree)"));
                }
                let node = self.nodes[i as usize];
                if node.mode != Mode::Leaf {
                    stack.extend([node.true_child, node.false_child]);
                }
            }
        }
        if seen.iter().any(|s| !s) {
            return fail("some nodes are unreachable from any root");
        }
        Ok(())
    }
}

fn refuse_unsupported(attrs: &Attributes<'_>) -> Result<(), ForestError> {
    for name in [
        "nodes_values_as_tensor",
        "class_weights_as_tensor",
        "base_values_as_tensor",
        "nodes_hitrates_as_tensor",
    ] {
        if attrs.has(name) {
            return fail(format!("{name} (double precision) is not supported"));
        }
    }
    if attrs.has("classlabels_strings") {
        return fail("string class labels are not supported");
    }
    let transform = attrs.0.get("post_transform").map_or(&b"NONE"[..], |a| &a.s);
    if transform != b"NONE" {
        return fail(format!(
            "post_transform {} is not supported (only NONE)",
            String::from_utf8_lossy(transform)
        ));
    }
    if attrs.floats("base_values").iter().any(|&v| v != 0.0) {
        return fail("non-zero base_values are not supported");
    }
    Ok(())
}

/// Where each (tree id, node id) is in the node array.
type NodeIndex = HashMap<(i64, i64), u32>;

/// The nodes in attribute order, and the index of each (tree id, node id).
fn nodes(attrs: &Attributes<'_>, features: usize) -> Result<(NodeIndex, Vec<Node>), ForestError> {
    let trees = attrs.ints("nodes_treeids")?;
    let ids = attrs.ints("nodes_nodeids")?;
    let feature_ids = attrs.ints("nodes_featureids")?;
    let values = attrs.floats("nodes_values");
    let modes = attrs.strings("nodes_modes");
    let true_ids = attrs.ints("nodes_truenodeids")?;
    let false_ids = attrs.ints("nodes_falsenodeids")?;
    let n = trees.len();
    let lengths = [
        ids.len(),
        feature_ids.len(),
        values.len(),
        modes.len(),
        true_ids.len(),
        false_ids.len(),
    ];
    if n == 0 || lengths.iter().any(|&l| l != n) {
        return fail("the nodes_* attributes are empty or differ in length");
    }
    if u32::try_from(n).is_err() {
        return fail("too many nodes");
    }
    let index = node_index(trees, ids)?;
    let child = |i: usize, id: i64| {
        index.get(&(trees[i], id)).copied().ok_or_else(|| {
            ForestError(format!(
                "node {}/{} has unknown child {id}",
                trees[i], ids[i]
            ))
        })
    };
    let mut nodes = Vec::with_capacity(n);
    for i in 0..n {
        let mode = Mode::parse(&modes[i])?;
        let node = if mode == Mode::Leaf {
            Node {
                mode,
                feature: 0,
                threshold: 0.0,
                true_child: 0,
                false_child: 0,
            }
        } else {
            let name = || format!("node {}/{}", trees[i], ids[i]);
            Node {
                mode,
                feature: split_feature(feature_ids[i], features, name)?,
                threshold: split_threshold(values[i], name)?,
                true_child: child(i, true_ids[i])?,
                false_child: child(i, false_ids[i])?,
            }
        };
        nodes.push(node);
    }
    Ok((index, nodes))
}

/// Where each (tree id, node id) is; a node declared twice is refused.
fn node_index(trees: &[i64], ids: &[i64]) -> Result<NodeIndex, ForestError> {
    let mut index = HashMap::with_capacity(trees.len());
    for (i, (&tree, &id)) in trees.iter().zip(ids).enumerate() {
        if index.insert((tree, id), i as u32).is_some() {
            return fail(format!("node {tree}/{id} is declared twice"));
        }
    }
    Ok(index)
}

/// The feature a split reads: one of the model's `features` inputs.
fn split_feature(id: i64, features: usize, name: impl Fn() -> String) -> Result<u32, ForestError> {
    match usize::try_from(id).ok().filter(|&f| f < features) {
        Some(feature) => Ok(feature as u32),
        None => fail(format!("{} reads feature {id} of {features}", name())),
    }
}

/// A split's threshold: NaN would send every row the same way.
fn split_threshold(value: f32, name: impl Fn() -> String) -> Result<f32, ForestError> {
    if value.is_nan() {
        return fail(format!("{} has a NaN threshold", name()));
    }
    Ok(value)
}

/// The root of each tree: the one node of the tree that is no node's child.
fn roots(index: &NodeIndex, nodes: &[Node]) -> Result<Vec<u32>, ForestError> {
    let mut is_child = vec![false; nodes.len()];
    for node in nodes.iter().filter(|n| n.mode != Mode::Leaf) {
        is_child[node.true_child as usize] = true;
        is_child[node.false_child as usize] = true;
    }
    let mut by_tree: Vec<(i64, u32)> = index
        .iter()
        .filter(|&(_, &i)| !is_child[i as usize])
        .map(|(&(tree, _), &i)| (tree, i))
        .collect();
    by_tree.sort_unstable();
    let trees: std::collections::BTreeSet<i64> = index.keys().map(|&(tree, _)| tree).collect();
    if by_tree.len() != trees.len() || by_tree.windows(2).any(|w| w[0].0 == w[1].0) {
        return fail("every tree must have exactly one root");
    }
    Ok(by_tree.into_iter().map(|(_, i)| i).collect())
}
