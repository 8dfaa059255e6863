//! Images: the record, allocation checks, storage and the IMAGE document.

use one_proto::states::ImageState;
use one_proto::template::Template;
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::xml;

/// Image TYPE names by number (oned's `Image::ImageType`).
const TYPES: [&str; 6] = ["OS", "CDROM", "DATABLOCK", "KERNEL", "RAMDISK", "CONTEXT"];
const TYPE_OS: i64 = 0;
const TYPE_DATABLOCK: i64 = 2;

/// The datastores of a fresh install that hold images: 1 `default` (images), 2 `files`.
pub(crate) fn datastore_name(id: i64) -> Option<&'static str> {
    match id {
        0 => Some("system"),
        1 => Some("default"),
        2 => Some("files"),
        _ => None,
    }
}

/// A disk image.
#[derive(Clone, Debug)]
pub(crate) struct Image {
    pub id: i64,
    pub uid: i64,
    pub gid: i64,
    pub uname: String,
    pub gname: String,
    pub name: String,
    pub itype: i64,
    pub persistent: bool,
    pub regtime: i64,
    pub source: String,
    pub path: String,
    pub format: String,
    pub fs: String,
    pub size_mb: i64,
    pub state: ImageState,
    /// The state last stored: a store with another state emits an event.
    pub prev_state: ImageState,
    pub ds_id: i64,
    pub template: Template,
    /// When the LOCKED or DELETE state ends (epoch ms).
    pub due_ms: Option<i64>,
}

/// What an allocation template says, after oned's checks.
#[derive(Debug)]
pub(crate) struct NewImage {
    pub name: String,
    pub itype: i64,
    pub persistent: bool,
    pub source: String,
    pub path: String,
    pub format: String,
    pub fs: String,
    pub size_mb: i64,
    pub template: Template,
}

fn take(t: &mut Template, name: &str) -> String {
    let v = t.get(name).unwrap_or_default().to_string();
    t.remove(name);
    v
}

/// oned's `Image::insert` checks; the error text is oned's.
pub(crate) fn parse_allocation(mut t: Template) -> Result<NewImage, String> {
    let name = take(&mut t, "NAME");
    super::check_name(&name)?;
    let type_name = take(&mut t, "TYPE");
    let type_name = if type_name.is_empty() {
        "OS".to_string()
    } else {
        type_name.to_ascii_uppercase()
    };
    let Some(itype) = TYPES.iter().position(|n| *n == type_name) else {
        return Err(format!("Unknown type {type_name}"));
    };
    let itype = itype as i64;
    let persistent_attr = take(&mut t, "PERSISTENT");
    let persistent = if itype == TYPE_OS || itype == TYPE_DATABLOCK {
        if t.get("DEV_PREFIX").is_none_or(str::is_empty) {
            t.set("DEV_PREFIX", "sd");
        }
        persistent_attr.eq_ignore_ascii_case("yes")
    } else {
        t.remove("DEV_PREFIX");
        false
    };
    let size_attr = take(&mut t, "SIZE");
    let size_mb = if size_attr.is_empty() {
        0
    } else {
        size_attr
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|s| *s >= 0)
            .ok_or_else(|| format!("Cannot parse image SIZE: {size_attr}"))?
    };
    let fs = take(&mut t, "FS");
    t.remove("DRIVER");
    let path = take(&mut t, "PATH");
    let source = take(&mut t, "SOURCE");
    let mut format = take(&mut t, "FORMAT");
    t.remove("TM_MAD");
    if !source.is_empty() {
        if !path.is_empty() {
            return Err("PATH and SOURCE cannot be both set.".into());
        }
        if format.is_empty() {
            return Err("SOURCE needs FORMAT to be set.".into());
        }
    } else if !path.is_empty() {
        // The datastore driver finds the format of a copied file.
        format.clear();
    } else if itype == TYPE_OS || itype == TYPE_DATABLOCK {
        if size_mb == 0 {
            return Err("Cannot determine image SIZE.".into());
        }
        if format.is_empty() {
            format = "raw".into();
        }
    } else {
        return Err("No PATH nor SOURCE in template.".into());
    }
    if t.to_xml().is_err() {
        return Err("Error transforming the Image to XML.".into());
    }
    Ok(NewImage {
        name,
        itype,
        persistent,
        source,
        path,
        format,
        fs,
        size_mb,
        template: t,
    })
}

impl Image {
    /// The IMAGE document with the given PREV_STATE.
    pub(crate) fn to_xml(&self, prev: ImageState) -> String {
        let mut out = String::with_capacity(1024);
        out.push_str("<IMAGE>");
        xml::num(&mut out, "ID", self.id);
        xml::num(&mut out, "UID", self.uid);
        xml::num(&mut out, "GID", self.gid);
        xml::text(&mut out, "UNAME", &self.uname);
        xml::text(&mut out, "GNAME", &self.gname);
        xml::text(&mut out, "NAME", &self.name);
        xml::owner_permissions(&mut out);
        xml::num(&mut out, "TYPE", self.itype);
        xml::num(&mut out, "DISK_TYPE", 0);
        xml::num(&mut out, "PERSISTENT", u8::from(self.persistent));
        xml::num(&mut out, "REGTIME", self.regtime);
        xml::num(&mut out, "MODTIME", self.regtime);
        xml::text(&mut out, "SOURCE", &self.source);
        xml::text(&mut out, "PATH", &self.path);
        xml::text(&mut out, "FORMAT", &self.format);
        xml::text(&mut out, "FS", &self.fs);
        xml::num(&mut out, "SIZE", self.size_mb);
        xml::num(&mut out, "STATE", self.state.number());
        xml::num(&mut out, "PREV_STATE", prev.number());
        xml::num(&mut out, "RUNNING_VMS", 0);
        xml::num(&mut out, "CLONING_OPS", 0);
        xml::num(&mut out, "CLONING_ID", -1);
        xml::num(&mut out, "TARGET_SNAPSHOT", -1);
        xml::num(&mut out, "DATASTORE_ID", self.ds_id);
        xml::text(
            &mut out,
            "DATASTORE",
            datastore_name(self.ds_id).unwrap_or_default(),
        );
        xml::ids(&mut out, "VMS", &[]);
        xml::ids(&mut out, "CLONES", &[]);
        xml::ids(&mut out, "APP_CLONES", &[]);
        xml::template(&mut out, &self.template, "TEMPLATE");
        out.push_str(
            "<SNAPSHOTS><ALLOW_ORPHANS>NO</ALLOW_ORPHANS><CURRENT_BASE>-1</CURRENT_BASE>\
             <NEXT_SNAPSHOT>0</NEXT_SNAPSHOT></SNAPSHOTS><BACKUP_INCREMENTS></BACKUP_INCREMENTS>\
             <BACKUP_DISK_IDS></BACKUP_DISK_IDS>",
        );
        out.push_str("</IMAGE>");
        out
    }
}

const COLUMNS: &str = "oid, uid, gid, uname, gname, name, type, persistent, regtime, source, path, format, fs, \
                       size_mb, state, prev_state, ds_id, template, due_ms";

fn state_from(n: i64, column: usize) -> rusqlite::Result<ImageState> {
    u32::try_from(n)
        .ok()
        .and_then(ImageState::from_number)
        .ok_or(rusqlite::Error::IntegralValueOutOfRange(column, n))
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Image> {
    let template: String = r.get(17)?;
    Ok(Image {
        id: r.get(0)?,
        uid: r.get(1)?,
        gid: r.get(2)?,
        uname: r.get(3)?,
        gname: r.get(4)?,
        name: r.get(5)?,
        itype: r.get(6)?,
        persistent: r.get::<_, i64>(7)? != 0,
        regtime: r.get(8)?,
        source: r.get(9)?,
        path: r.get(10)?,
        format: r.get(11)?,
        fs: r.get(12)?,
        size_mb: r.get(13)?,
        state: state_from(r.get(14)?, 14)?,
        prev_state: state_from(r.get(15)?, 15)?,
        ds_id: r.get(16)?,
        template: Template::parse(&template).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(17, rusqlite::types::Type::Text, Box::new(e))
        })?,
        due_ms: r.get(18)?,
    })
}

pub(crate) fn load(c: &Connection, id: i64) -> rusqlite::Result<Option<Image>> {
    c.prepare_cached(&format!("SELECT {COLUMNS} FROM image_pool WHERE oid = ?1"))?
        .query_row([id], row)
        .optional()
}

/// The id of the owner's image with this name (names are unique per owner).
pub(crate) fn id_by_name(c: &Connection, uid: i64, name: &str) -> rusqlite::Result<Option<i64>> {
    c.prepare_cached("SELECT oid FROM image_pool WHERE uid = ?1 AND name = ?2")?
        .query_row(params![uid, name], |r| r.get(0))
        .optional()
}

/// The images a pool listing selects (owner filter, id range).
pub(crate) fn list(
    c: &Connection,
    owner: Option<i64>,
    range: (i64, i64),
    descending: bool,
) -> rusqlite::Result<Vec<Image>> {
    let order = if descending { "DESC" } else { "ASC" };
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM image_pool WHERE (?1 IS NULL OR uid = ?1) AND (?2 < 0 OR oid >= ?2) \
         AND (?3 < 0 OR oid <= ?3) ORDER BY oid {order}"
    ))?;
    stmt.query_map(params![owner, range.0, range.1], row)?
        .collect()
}

/// Ids and due times of every image with a pending step.
pub(crate) fn pending(c: &Connection) -> rusqlite::Result<Vec<(i64, i64)>> {
    let mut stmt =
        c.prepare_cached("SELECT oid, due_ms FROM image_pool WHERE due_ms IS NOT NULL")?;
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect()
}

pub(crate) fn store(tx: &Transaction<'_>, i: &Image) -> rusqlite::Result<()> {
    tx.prepare_cached(&format!(
        "INSERT OR REPLACE INTO image_pool ({COLUMNS}) VALUES \
         (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)"
    ))?
    .execute(params![
        i.id,
        i.uid,
        i.gid,
        i.uname,
        i.gname,
        i.name,
        i.itype,
        i64::from(i.persistent),
        i.regtime,
        i.source,
        i.path,
        i.format,
        i.fs,
        i.size_mb,
        i.state.number(),
        i.prev_state.number(),
        i.ds_id,
        i.template.to_text(),
        i.due_ms,
    ])?;
    Ok(())
}

pub(crate) fn delete(tx: &Transaction<'_>, id: i64) -> rusqlite::Result<usize> {
    tx.execute("DELETE FROM image_pool WHERE oid = ?1", [id])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<NewImage, String> {
        parse_allocation(Template::parse(text).unwrap())
    }

    #[test]
    fn allocation_checks_follow_oned() {
        let i = parse("NAME = disk\nTYPE = datablock\nSIZE = 100\nPERSISTENT = yes\nLABEL = x")
            .unwrap();
        assert_eq!(
            (i.itype, i.size_mb, i.persistent, i.format.as_str()),
            (2, 100, true, "raw")
        );
        assert_eq!(i.template.get("DEV_PREFIX"), Some("sd"));
        assert_eq!(i.template.get("LABEL"), Some("x"));
        assert!(!i.template.contains("NAME") && !i.template.contains("SIZE"));
        let i = parse("NAME = k\nTYPE = KERNEL\nPATH = /boot/vmlinuz").unwrap();
        assert_eq!((i.itype, i.path.as_str()), (3, "/boot/vmlinuz"));
        assert_eq!(
            parse("NAME = a\nTYPE = nope").unwrap_err(),
            "Unknown type NOPE"
        );
        assert_eq!(
            parse("NAME = a\nPATH = /x\nSOURCE = y").unwrap_err(),
            "PATH and SOURCE cannot be both set."
        );
        assert_eq!(
            parse("NAME = a\nSOURCE = y").unwrap_err(),
            "SOURCE needs FORMAT to be set."
        );
        assert_eq!(
            parse("NAME = a\nTYPE = CDROM").unwrap_err(),
            "No PATH nor SOURCE in template."
        );
        assert_eq!(
            parse("NAME = a\nSIZE = big").unwrap_err(),
            "Cannot parse image SIZE: big"
        );
        assert!(parse("PATH = /x").unwrap_err().contains("NAME"));
    }

    #[test]
    fn the_document_has_oned_order() {
        let n = parse("NAME = disk\nPATH = /tmp/x").unwrap();
        let img = Image {
            id: 7,
            uid: 0,
            gid: 0,
            uname: "oneadmin".into(),
            gname: "oneadmin".into(),
            name: n.name,
            itype: n.itype,
            persistent: n.persistent,
            regtime: 5,
            source: String::new(),
            path: n.path,
            format: n.format,
            fs: n.fs,
            size_mb: 0,
            state: ImageState::Ready,
            prev_state: ImageState::Locked,
            ds_id: 1,
            template: n.template,
            due_ms: None,
        };
        let x = img.to_xml(ImageState::Locked);
        assert!(
            x.starts_with("<IMAGE><ID>7</ID><UID>0</UID><GID>0</GID><UNAME>oneadmin</UNAME>"),
            "{x}"
        );
        assert!(x.contains("<STATE>1</STATE><PREV_STATE>4</PREV_STATE>"));
        assert!(
            x.contains("<DATASTORE_ID>1</DATASTORE_ID><DATASTORE>default</DATASTORE><VMS></VMS>")
        );
        assert!(x.ends_with("</IMAGE>"));
    }
}
