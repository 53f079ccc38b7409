//! TypeScript to JavaScript: types are stripped with oxc (parse, semantic
//! analysis, the TypeScript transform, code generation). Nothing else is
//! transformed: the output is modern JavaScript for QuickJS.

use oxc_allocator::Allocator;
use oxc_codegen::Codegen;
use oxc_parser::Parser;
use oxc_semantic::SemanticBuilder;
use oxc_span::SourceType;
use oxc_transformer::{TransformOptions, Transformer};
use std::path::Path;

/// Largest agent source accepted, in bytes.
pub const SOURCE_BYTES_MAX: usize = 4 * 1024 * 1024;

/// Why source code could not be turned into JavaScript.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SourceError {
    #[error("agent source is {len} bytes, more than the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("file name {0:?} is not .js, .mjs, .ts or .mts")]
    UnknownKind(String),
    #[error("syntax error:\n{0}")]
    Syntax(String),
}

/// Returns JavaScript for `source`; `file_name`'s extension says whether it
/// is TypeScript. JavaScript passes through unchanged.
pub fn to_javascript(source: &str, file_name: &str) -> Result<String, SourceError> {
    if source.len() > SOURCE_BYTES_MAX {
        return Err(SourceError::TooLarge { len: source.len(), max: SOURCE_BYTES_MAX });
    }
    let path = Path::new(file_name);
    let is_typescript = match path.extension().and_then(|e| e.to_str()) {
        Some("ts" | "mts") => true,
        Some("js" | "mjs") => false,
        _ => return Err(SourceError::UnknownKind(file_name.to_string())),
    };
    if !is_typescript {
        return Ok(source.to_string());
    }
    let allocator = Allocator::default();
    let source_type = SourceType::from_path(path).map_err(|_| SourceError::UnknownKind(file_name.to_string()))?;
    let parsed = Parser::new(&allocator, source, source_type).parse();
    if parsed.panicked || parsed.diagnostics.has_errors() {
        return Err(SourceError::Syntax(render(parsed.diagnostics, source)));
    }
    let mut program = parsed.program;
    let semantic = SemanticBuilder::new().with_excess_capacity(2.0).with_enum_eval(true).build(&program);
    if semantic.diagnostics.has_errors() {
        return Err(SourceError::Syntax(render(semantic.diagnostics, source)));
    }
    let scoping = semantic.semantic.into_scoping();
    let transformed =
        Transformer::new(&allocator, path, &TransformOptions::default()).build_with_scoping(scoping, &mut program);
    if transformed.diagnostics.has_errors() {
        return Err(SourceError::Syntax(render(transformed.diagnostics, source)));
    }
    Ok(Codegen::new().build(&program).code)
}

fn render(diagnostics: oxc_diagnostics::Diagnostics, source: &str) -> String {
    diagnostics
        .into_vec()
        .into_iter()
        .map(|d| d.render_with_source_code(source.to_string()))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_types_and_keeps_behaviour() {
        let ts = r#"
            import type { Thing } from "./types";
            interface Env { GREETING: string }
            type Id<T> = T;
            enum Color { Red, Green = "g" }
            export default {
              async fetch(request: Request, env: Env): Promise<Response> {
                const name = (request as any).name as string;
                const n: Id<number> = 1 satisfies number;
                return new Response(`${env.GREETING} ${name}! ${Color.Green}${n}`);
              },
            };
        "#;
        let js = to_javascript(ts, "agent.ts").unwrap();
        assert!(!js.contains("interface"));
        assert!(!js.contains(": Env"));
        assert!(!js.contains("import type"));
        assert!(js.contains("export default"));
        assert!(js.contains("Color"));
    }

    #[test]
    fn errors_are_clear() {
        assert!(
            matches!(to_javascript("let x: = 1;", "a.ts"), Err(SourceError::Syntax(m)) if m.contains("a.ts") || !m.is_empty())
        );
        assert_eq!(to_javascript("x", "a.py"), Err(SourceError::UnknownKind("a.py".into())));
        let huge = "x".repeat(SOURCE_BYTES_MAX + 1);
        assert!(matches!(to_javascript(&huge, "a.js"), Err(SourceError::TooLarge { .. })));
        assert_eq!(to_javascript("export default 1;", "a.js").unwrap(), "export default 1;");
    }
}
