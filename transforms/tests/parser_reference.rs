//! The hand-written parser of `xml` against a reference built on quick-xml
//! (the parser it replaced): on generated near-XML inputs, whatever the new
//! parser accepts the reference accepts too, with the same tree, and every
//! document of well-formed shape both accept identically.

use proptest::prelude::*;
use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

use cib_transforms::xml::{parse, Element};

/// The previous parser, kept as the reference (limits left out: tested
/// separately in the unit tests).
fn reference(input: &str) -> Result<Element, String> {
    let mut reader = Reader::from_str(input);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let event = reader.read_event().map_err(|e| e.to_string())?;
        match event {
            Event::Start(_) | Event::Empty(_) if root.is_some() => return Err("after root".into()),
            Event::Start(start) => stack.push(element_from(&start)?),
            Event::Empty(start) => {
                let el = element_from(&start)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::End(_) => {
                let el = stack.pop().ok_or("unexpected end")?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::Text(t) => push_text(&mut stack, &t.xml_content(XmlVersion::Implicit1_0), root.is_some())?,
            Event::CData(t) => push_text(&mut stack, &t.into_inner(), root.is_some())?,
            Event::GeneralRef(r) => {
                let resolved = if r.is_char_ref() {
                    r.resolve_char_ref().map_err(|e| e.to_string())?.map(String::from)
                } else {
                    match r.as_ref() {
                        "lt" => Some("<".to_string()),
                        "gt" => Some(">".to_string()),
                        "amp" => Some("&".to_string()),
                        "apos" => Some("'".to_string()),
                        "quot" => Some("\"".to_string()),
                        _ => None,
                    }
                };
                let text = resolved.ok_or("entity")?;
                if stack.is_empty() {
                    return Err("outside root".into());
                }
                push_text(&mut stack, &text, root.is_some())?;
            }
            Event::DocType(_) => return Err("doctype".into()),
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err("unclosed".into());
    }
    root.ok_or_else(|| "no root".into())
}

fn push_text(stack: &mut [Element], text: &str, after_root: bool) -> Result<(), String> {
    match stack.last_mut() {
        Some(el) => {
            if !text.trim().is_empty() || !el.text.is_empty() {
                el.text.push_str(text);
            }
            Ok(())
        }
        None if text.trim().is_empty() => Ok(()),
        None if after_root => Err("text after root".into()),
        None => Err("text before root".into()),
    }
}

fn element_from(start: &BytesStart<'_>) -> Result<Element, String> {
    let mut el = Element::new(start.name().as_ref().to_string());
    for attr in start.attributes() {
        let attr = attr.map_err(|e| e.to_string())?;
        let key = attr.key.as_ref().to_string();
        let value = attr.normalized_value(XmlVersion::Implicit1_0).map_err(|e| e.to_string())?.into_owned();
        if el.attr(&key).is_some() {
            return Err("duplicate".into());
        }
        el.attrs.push((key, value));
    }
    Ok(el)
}

/// Pieces of near-XML, glued at random.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("<a>".to_string()),
        Just("</a>".to_string()),
        Just("<b x=\"1\">".to_string()),
        Just("</b>".to_string()),
        Just("<c/>".to_string()),
        Just("<c />".to_string()),
        Just("<d k='v' j=\"w\"/>".to_string()),
        Just("<e a=\"x&amp;y&#10;&#x41;\tz\r\nq\"/>".to_string()),
        Just("<e a=\"1\" a=\"2\"/>".to_string()),
        Just("<e a=\"&bogus;\"/>".to_string()),
        Just("<e a=\"<\"/>".to_string()),
        Just("<e a=1/>".to_string()),
        Just("<e a=\"1\"b=\"2\"/>".to_string()),
        Just("<e\ta = \"1\"\n/>".to_string()),
        Just("text".to_string()),
        Just(" \n\t ".to_string()),
        Just("\r\n".to_string()),
        Just("\u{a0}".to_string()),
        Just("&amp;".to_string()),
        Just("&lt;&gt;&quot;&apos;".to_string()),
        Just("&#65;".to_string()),
        Just("&#x1F600;".to_string()),
        Just("&#0;".to_string()),
        Just("&nope;".to_string()),
        Just("&".to_string()),
        Just("<!-- c -->".to_string()),
        Just("<?pi x?>".to_string()),
        Just("<![CDATA[ <x> & \r\n ]]>".to_string()),
        Just("<!DOCTYPE a>".to_string()),
        Just(">".to_string()),
        Just("<".to_string()),
        Just("</a >".to_string()),
        Just("<a\n>".to_string()),
    ]
}

/// A well-formed document: nested elements with attributes and text.
fn document() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("<p id=\"1\" v=\"a&amp;b\"/>".to_string()),
        Just("<q name='n' value=\"x&#9;y\"></q>".to_string()),
        Just("t &lt; u".to_string()),
        Just("\n  ".to_string()),
        Just("<![CDATA[raw]]>".to_string()),
        Just("<!-- note -->".to_string()),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        (proptest::collection::vec(inner, 0..4), "[a-z]{1,3}", "[ -~]{0,6}").prop_map(|(kids, name, value)| {
            let value = value.replace('&', "&amp;").replace('<', "&lt;").replace('"', "&quot;");
            format!("<{name} id=\"{value}\">{}</{name}>", kids.concat())
        })
    })
    .prop_map(|body| format!("<?xml version=\"1.0\"?>\n<root>{body}</root>\n"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn accepts_nothing_the_reference_refuses(parts in proptest::collection::vec(fragment(), 0..12)) {
        let input = parts.concat();
        if let Ok(ours) = parse(&input) {
            let theirs = reference(&input);
            prop_assert_eq!(Ok(ours), theirs, "{:?}", input);
        }
    }

    #[test]
    fn same_tree_on_well_formed_documents(input in document()) {
        let ours = parse(&input).map_err(|e| e.to_string());
        prop_assert_eq!(ours, reference(&input), "{:?}", input);
    }
}
