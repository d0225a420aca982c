//! The settings of files and articles: where files are stored, which
//! content types may be uploaded, how long download links live, which
//! origins articles may come from. (MAX_UPLOAD_BYTES is a request limit,
//! in [`super::Limits`].)

use super::settings::*;
use super::{invalid, ConfigError, Env, Secret};
use crate::storage::s3::AwsSettings;

/// What uploads may be unless UPLOAD_CONTENT_TYPES says otherwise.
pub const DEFAULT_CONTENT_TYPES: &str =
    "image/png,image/jpeg,image/gif,image/webp,application/pdf,text/plain";

#[derive(Clone, Debug)]
pub struct FileSettings {
    /// `s3://bucket/prefix`, a folder, or None for DATA_DIR/files.
    pub storage_url: Option<String>,
    pub aws: AwsSettings,
    /// Sniffed content types uploads may have (`type/sub`, or `type/*`).
    pub content_types: Vec<String>,
    pub download_link_ttl_secs: i64,
    /// `https://host[:port]` origins articles may be shared from; none
    /// turns sharing off.
    pub article_origins: Vec<String>,
}

impl FileSettings {
    pub(super) fn parse<F: Fn(&str) -> Option<String>>(
        env: &Env<F>,
    ) -> Result<FileSettings, ConfigError> {
        let content_types = env
            .text(&UPLOAD_CONTENT_TYPES)
            .unwrap_or_else(|| DEFAULT_CONTENT_TYPES.to_owned())
            .split(',')
            .map(|t| t.trim().to_ascii_lowercase())
            .filter(|t| !t.is_empty())
            .map(|t| match t.split_once('/') {
                Some((a, b)) if !a.is_empty() && !b.is_empty() && !b.contains('/') => Ok(t),
                _ => Err(invalid(
                    &UPLOAD_CONTENT_TYPES,
                    format!("{t:?} is not a content type such as image/png or image/*"),
                )),
            })
            .collect::<Result<_, _>>()?;
        let article_origins = env
            .list(&ARTICLE_ORIGINS)
            .iter()
            .map(|o| {
                article_origin(o)
                    .map_err(|reason| invalid(&ARTICLE_ORIGINS, format!("{o:?}: {reason}")))
            })
            .collect::<Result<_, _>>()?;
        let aws = [
            &AWS_ENDPOINT_URL,
            &AWS_REGION,
            &AWS_ACCESS_KEY_ID,
            &AWS_SECRET_ACCESS_KEY,
            &AWS_SESSION_TOKEN,
        ]
        .into_iter()
        .filter_map(|s| {
            let value = env.text(s)?.trim().to_owned();
            (!value.is_empty()).then_some((s.name, Secret(value)))
        })
        .collect();
        let storage_url = env
            .text(&STORAGE_URL)
            .map(|u| u.trim().to_owned())
            .filter(|u| !u.is_empty());
        if let Some(url) = &storage_url {
            if url.contains("://") && !url.starts_with("s3://") && !url.starts_with("file://") {
                return Err(invalid(
                    &STORAGE_URL,
                    format!(
                        "{:?}: use s3://bucket/prefix or a folder",
                        super::redact_url(url)
                    ),
                ));
            }
        }
        Ok(FileSettings {
            storage_url,
            aws: AwsSettings(aws),
            content_types,
            download_link_ttl_secs: env.int(&DOWNLOAD_LINK_TTL_SECS)?,
            article_origins,
        })
    }
}

/// `https://host[:port]`, as browsers serialize origins.
fn article_origin(raw: &str) -> Result<String, String> {
    let url = url::Url::parse(raw).map_err(|e| e.to_string())?;
    if url.scheme() != "https" {
        return Err("articles are shared over https only".into());
    }
    if url.path() != "/" || url.query().is_some() || !url.username().is_empty() {
        return Err("an origin is https://host[:port], without a path".into());
    }
    Ok(url.origin().ascii_serialization())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_https_hosts() {
        assert_eq!(
            article_origin("https://Help.Example.com/"),
            Ok("https://help.example.com".into())
        );
        assert_eq!(
            article_origin("https://help.example.com:8443"),
            Ok("https://help.example.com:8443".into())
        );
        assert!(article_origin("http://help.example.com").is_err());
        assert!(article_origin("https://help.example.com/kb").is_err());
        assert!(article_origin("help.example.com").is_err());
    }
}
