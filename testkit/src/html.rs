//! Reading the start tags of a page as the server writes them (attributes
//! double-quoted). Pure and std-only: the server's own unit tests include
//! this file by path, so the one copy serves both.

/// Attribute `name` of an HTML start tag.
pub fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let len = tag[start..].find('"')?;
    Some(&tag[start..start + len])
}

/// Every `<script …>` and `<link …>` start tag in `html`.
pub fn tags(html: &str) -> Vec<&str> {
    let mut found = Vec::new();
    for open in ["<script", "<link"] {
        let mut rest = html;
        while let Some(i) = rest.find(open) {
            let len = rest[i..].find('>').expect("tag ends");
            found.push(&rest[i..=i + len]);
            rest = &rest[i + len..];
        }
    }
    found
}
