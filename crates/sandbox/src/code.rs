//! Agent code compiled once: TypeScript types stripped, the module compiled
//! to QuickJS bytecode, keyed by the SHA-256 of the source.
//!
//! Parsing is the expensive part of starting an agent (QuickJS parses at
//! roughly 100 µs per KiB); loading bytecode is several times cheaper. An
//! [`AgentCode`] can only be made by [`AgentCode::compile`], so the bytecode
//! a sandbox loads is always bytecode this process wrote; it is kept in
//! memory only and never read from outside.

use crate::typescript::{SourceError, to_javascript};
use rquickjs::module::WriteOptions;
use rquickjs::{Context, Module, Runtime};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// Largest agent source accepted, in bytes.
pub const SOURCE_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Heap the compiler may use for one module.
const COMPILE_MEMORY_BYTES_MAX: usize = 256 * 1024 * 1024;
/// Native stack the compiler may use (bounds nesting depth).
const COMPILE_STACK_BYTES_MAX: usize = 1024 * 1024;

/// Why agent code could not be compiled.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CompileError {
    #[error("agent source is {size} bytes; the limit is {SOURCE_BYTES_MAX}")]
    TooLarge { size: usize },
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("agent module does not compile: {0}")]
    Module(String),
    #[error("cannot start the compiler: {0}")]
    Engine(String),
}

/// One agent's compiled module.
#[derive(Clone, PartialEq, Eq)]
pub struct AgentCode {
    hash: [u8; 32],
    name: String,
    bytecode: Arc<[u8]>,
}

impl std::fmt::Debug for AgentCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentCode")
            .field("hash", &hex(&self.hash))
            .field("name", &self.name)
            .field("bytecode_bytes", &self.bytecode.len())
            .finish()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl AgentCode {
    /// Compiles `source`; `file_name` says whether it is TypeScript
    /// (`.ts`, `.mts`) and names the module in stack traces.
    pub fn compile(file_name: &str, source: &str) -> Result<Self, CompileError> {
        Self::compile_hashed(Sha256::digest(source.as_bytes()).into(), file_name, source)
    }

    /// [`compile`](Self::compile) for a source whose hash is known.
    fn compile_hashed(hash: [u8; 32], file_name: &str, source: &str) -> Result<Self, CompileError> {
        if source.len() > SOURCE_BYTES_MAX {
            return Err(CompileError::TooLarge { size: source.len() });
        }
        let javascript = to_javascript(source, file_name)?;
        let runtime = Runtime::new().map_err(|e| CompileError::Engine(e.to_string()))?;
        runtime.set_memory_limit(COMPILE_MEMORY_BYTES_MAX);
        runtime.set_max_stack_size(COMPILE_STACK_BYTES_MAX);
        runtime.set_loader(crate::engine::DenyImports, crate::engine::DenyImports);
        let context = Context::full(&runtime).map_err(|e| CompileError::Engine(e.to_string()))?;
        let bytecode = context.with(|ctx| {
            Module::declare(ctx.clone(), file_name, javascript)
                .and_then(|module| module.write(WriteOptions::default()))
                .map_err(|e| CompileError::Module(crate::engine::describe(&ctx, e)))
        })?;
        Ok(AgentCode { hash, name: file_name.to_string(), bytecode: bytecode.into() })
    }

    /// SHA-256 of the source.
    pub fn hash(&self) -> [u8; 32] {
        self.hash
    }

    /// The module's file name.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn bytecode(&self) -> &[u8] {
        &self.bytecode
    }

    /// Size of the bytecode, in bytes.
    pub fn bytecode_len(&self) -> usize {
        self.bytecode.len()
    }
}

/// Compiled code by source hash, bounded in total bytecode size; the oldest
/// entries go first when it is full.
#[derive(Debug)]
pub struct CodeCache {
    bytes_max: usize,
    inner: Mutex<CacheInner>,
}

#[derive(Debug, Default)]
struct CacheInner {
    entries: HashMap<[u8; 32], Arc<AgentCode>>,
    order: VecDeque<[u8; 32]>,
    bytes: usize,
}

impl CodeCache {
    /// A cache holding at most `bytes_max` bytes of bytecode.
    pub fn new(bytes_max: usize) -> Self {
        CodeCache { bytes_max, inner: Mutex::new(CacheInner::default()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The compiled form of `source`, compiling it on first sight.
    pub fn get_or_compile(&self, file_name: &str, source: &str) -> Result<Arc<AgentCode>, CompileError> {
        self.get_or_compile_hashed(Sha256::digest(source.as_bytes()).into(), file_name, source)
    }

    /// [`get_or_compile`](Self::get_or_compile) for a caller that already
    /// holds the source's SHA-256 (a worker has it from the verified chain),
    /// so a warm call does not hash the source again. `hash` must be the
    /// SHA-256 of `source`.
    pub fn get_or_compile_hashed(
        &self,
        hash: [u8; 32],
        file_name: &str,
        source: &str,
    ) -> Result<Arc<AgentCode>, CompileError> {
        if let Some(code) = self.lock().entries.get(&hash).filter(|c| c.name == file_name) {
            return Ok(code.clone());
        }
        let code = Arc::new(AgentCode::compile_hashed(hash, file_name, source)?);
        let mut inner = self.lock();
        if !inner.entries.contains_key(&hash) {
            inner.bytes += code.bytecode.len();
            inner.order.push_back(hash);
        } else if let Some(old) = inner.entries.get(&hash) {
            inner.bytes = inner.bytes - old.bytecode.len() + code.bytecode.len();
        }
        inner.entries.insert(hash, code.clone());
        while inner.bytes > self.bytes_max && inner.order.len() > 1 {
            let Some(oldest) = inner.order.pop_front() else { break };
            if let Some(gone) = inner.entries.remove(&oldest) {
                inner.bytes -= gone.bytecode.len();
            }
        }
        Ok(code)
    }

    /// Number of compiled modules held.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for CodeCache {
    /// 64 MiB of bytecode.
    fn default() -> Self {
        CodeCache::new(64 * 1024 * 1024)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_each_source_once_and_stays_within_its_budget() {
        let cache = CodeCache::new(1);
        let source = "export default { fetch() { return new Response('a'); } };";
        let first = cache.get_or_compile("a.js", source).unwrap();
        let again = cache.get_or_compile("a.js", source).unwrap();
        assert!(Arc::ptr_eq(&first, &again), "the same source is compiled once");
        assert_eq!(first.hash(), <[u8; 32]>::from(Sha256::digest(source.as_bytes())));
        let other = cache.get_or_compile("b.js", "export default { fetch() {} };").unwrap();
        assert_ne!(other.hash(), first.hash());
        // Over budget: the oldest entry went, the newest stays.
        assert_eq!(cache.len(), 1);
        let recompiled = cache.get_or_compile("a.js", source).unwrap();
        assert!(!Arc::ptr_eq(&first, &recompiled));
        assert_eq!(recompiled.bytecode(), first.bytecode(), "compilation is deterministic");
    }
}
