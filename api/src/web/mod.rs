//! The browser UI the server ships: the customer widget (`<switchboard-chat>`,
//! one script at `/widget.js`) and the agent and admin console
//! (`/console`). Plain HTML, CSS and JavaScript modules, built into the
//! binary at compile time: no bundler, no third-party code, nothing to
//! fetch. [`crate::http`] serves them with their headers.
//!
//! The GraphQL client (`client.js`) is shared: the widget is served as one
//! classic script (the client and the element wrapped in one function, so
//! the host page gets no globals but the element's name), the console
//! imports the same file as a module.
//!
//! Debug builds serve the files from disk instead when
//! `SWITCHBOARD_WEB_DIR` names this folder, so a page reload shows an edit
//! without a rebuild; release builds always serve what was compiled in.

use std::borrow::Cow;

/// One served file.
pub struct Asset {
    /// Where it is served, e.g. `/widget.js`.
    pub path: &'static str,
    pub content_type: &'static str,
    /// Its text as compiled in.
    embedded: &'static str,
    /// How it is made from the files of this folder, for the debug override
    /// (and the unit test that checks it against `embedded`); a release
    /// build never reads it.
    #[cfg_attr(not(debug_assertions), allow(dead_code))]
    parts: &'static [Part],
}

/// A piece of a served file: a file of this folder, or fixed text.
#[cfg_attr(not(debug_assertions), allow(dead_code))]
enum Part {
    File(&'static str),
    Text(&'static str),
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";

// The fixed texts appear twice, in `concat!` (which takes only literals)
// and in `parts`; a unit test checks that the two agree.
const WIDGET_START: &str = "(() => {\n'use strict';\n";
const WIDGET_END: &str = "\n})();\n";
const CLIENT_EXPORTS: &str = "\nexport { createClient, newClientMessageId, sendReliably, el, duration, renderTranscript, Transcript, TypingSignal, MESSAGE_FIELDS, SESSION_OPS };\n";

/// The widget script: the client and the element, wrapped in one function.
pub const WIDGET: Asset = Asset {
    path: "/widget.js",
    content_type: JS,
    embedded: concat!(
        "(() => {\n'use strict';\n",
        include_str!("client.js"),
        include_str!("widget/widget.js"),
        "\n})();\n"
    ),
    parts: &[
        Part::Text(WIDGET_START),
        Part::File("client.js"),
        Part::File("widget/widget.js"),
        Part::Text(WIDGET_END),
    ],
};

/// The console's page; its scripts and styles are the assets below.
pub const CONSOLE_PAGE: Asset = Asset {
    path: "/console",
    content_type: HTML,
    embedded: include_str!("console/index.html"),
    parts: &[Part::File("console/index.html")],
};

/// The console's files under `/console/`, served with the console's headers.
pub const CONSOLE_FILES: &[Asset] = &[
    Asset {
        path: "/console/client.js",
        content_type: JS,
        embedded: concat!(
            include_str!("client.js"),
            "\nexport { createClient, newClientMessageId, sendReliably, el, duration, renderTranscript, Transcript, TypingSignal, MESSAGE_FIELDS, SESSION_OPS };\n"
        ),
        parts: &[Part::File("client.js"), Part::Text(CLIENT_EXPORTS)],
    },
    Asset {
        path: "/console/app.js",
        content_type: JS,
        embedded: include_str!("console/app.js"),
        parts: &[Part::File("console/app.js")],
    },
    Asset {
        path: "/console/chat.js",
        content_type: JS,
        embedded: include_str!("console/chat.js"),
        parts: &[Part::File("console/chat.js")],
    },
    Asset {
        path: "/console/admin.js",
        content_type: JS,
        embedded: include_str!("console/admin.js"),
        parts: &[Part::File("console/admin.js")],
    },
    Asset {
        path: "/console/console.css",
        content_type: CSS,
        embedded: include_str!("console/console.css"),
        parts: &[Part::File("console/console.css")],
    },
];

impl Asset {
    /// The bytes to serve: what was compiled in, or (debug builds with
    /// `SWITCHBOARD_WEB_DIR`) the files as they are on disk now.
    pub fn body(&self) -> Cow<'static, str> {
        #[cfg(debug_assertions)]
        if let Some(dir) = std::env::var_os("SWITCHBOARD_WEB_DIR") {
            match self.read_parts(std::path::Path::new(&dir)) {
                Ok(text) => return Cow::Owned(text),
                Err(e) => {
                    tracing::warn!(error = %e, path = self.path, "SWITCHBOARD_WEB_DIR: serving the built-in file")
                }
            }
        }
        Cow::Borrowed(self.embedded)
    }

    #[cfg(any(debug_assertions, test))]
    fn read_parts(&self, dir: &std::path::Path) -> std::io::Result<String> {
        let mut text = String::new();
        for part in self.parts {
            match part {
                Part::Text(t) => text.push_str(t),
                Part::File(f) => text.push_str(&std::fs::read_to_string(dir.join(f))?),
            }
        }
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> impl Iterator<Item = &'static Asset> {
        [&WIDGET, &CONSOLE_PAGE].into_iter().chain(CONSOLE_FILES)
    }

    /// The debug override builds each file as the compiled-in one is built.
    #[test]
    fn parts_make_the_embedded_text() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/web");
        for asset in all() {
            assert_eq!(
                asset.read_parts(&dir).expect("read the parts"),
                asset.embedded,
                "{}",
                asset.path
            );
        }
    }

    /// Light on the host page: the whole widget, uncompressed.
    #[test]
    fn widget_is_under_50_kb() {
        assert!(
            WIDGET.embedded.len() < 50 * 1024,
            "{} bytes",
            WIDGET.embedded.len()
        );
    }

    #[test]
    fn console_files_are_under_console() {
        for asset in CONSOLE_FILES {
            assert!(asset.path.starts_with("/console/"), "{}", asset.path);
        }
    }
}
