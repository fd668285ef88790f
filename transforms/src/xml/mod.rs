//! The element tree of CIB documents, its hardened parser and its writer.
//!
//! - [`tree`]: [`Element`], the one tree every path works on.
//! - [`parser`]: quick-xml behind the checks that make it safe on hostile
//!   input and as strict as libxml2 on well-formedness ([`parse`],
//!   [`Limits`]).
//! - [`writer`]: the indented serialization and the escapes, into any
//!   [`Sink`] (a `String`, or a hasher).

pub mod parser;
pub mod tree;
pub mod writer;

pub use parser::{decode, parse, parse_with, refuse_doctype, Limits};
pub use tree::Element;
pub use writer::{escape_attr, escape_attr_into, Sink};
