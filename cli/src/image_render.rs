//! `oneimage list` and `oneimage show` layouts (after the reference's `oneimage.yaml` and
//! `OneImageHelper`).

use crate::short_state::{image_short, image_type_name, image_type_short, lock_level};
use crate::table::{Column, Table, TableError, TableOptions};
use crate::template_text::template_lines;
use crate::terminal::{Style, Terminal};
use crate::timestamp::{Zone, ruby_to_i, time_to_str};
use crate::units::unit_to_str;
use crate::xml::Element;

/// ID, USER, GROUP, NAME, DATASTORE, SIZE, TYPE, PER, STAT, RVMS.
pub fn image_table() -> Table {
    Table::new(vec![
        Column::new("ID", "ONE identifier for the Image", 4).adjust(),
        Column::new("USER", "Username of the Image owner", 8).left(),
        Column::new("GROUP", "Group of the Image", 8).left(),
        Column::new("NAME", "Name of the Image", 15).left().expand(),
        Column::new("DATASTORE", "Name of the Datastore", 10).left(),
        Column::new("SIZE", "Size of the Image", 7),
        Column::new("TYPE", "Type of the Image", 4).left(),
        Column::new("PER", "Whether the Image is persistent or not", 3),
        Column::new("STAT", "State of the Image", 4).left(),
        Column::new("RVMS", "Number of VMs currently running from this Image", 4),
    ])
}

fn yes_no(v: &str) -> &'static str {
    if v == "1" { "Yes" } else { "No" }
}

pub fn image_rows(pool: &Element) -> Vec<Vec<String>> {
    pool.children_named("IMAGE")
        .map(|i| {
            vec![
                i.str_at("ID").to_string(),
                i.str_at("UNAME").to_string(),
                i.str_at("GNAME").to_string(),
                i.str_at("NAME").to_string(),
                i.str_at("DATASTORE").to_string(),
                unit_to_str(ruby_to_i(i.str_at("SIZE")), "M"),
                image_type_short(i.str_at("TYPE")),
                yes_no(i.str_at("PERSISTENT")).to_string(),
                image_short(i.str_at("STATE")),
                i.str_at("RUNNING_VMS").to_string(),
            ]
        })
        .collect()
}

pub fn render_image_pool(
    pool: &Element,
    options: &TableOptions,
    terminal: &Terminal,
) -> Result<String, TableError> {
    image_table().render(&image_rows(pool), options, terminal)
}

/// `oneimage show`: information, permissions and the template.
pub fn render_image(image: &Element, terminal: &Terminal, zone: Zone) -> String {
    let style = Style::new(terminal);
    let row = |label: &str, value: &str| format!("{label:<15}: {value:<20}\n");
    let mut out = String::new();
    let title = format!("IMAGE {} INFORMATION", image.str_at("ID"));
    out.push_str(&style.header(&format!("{title:<80}"), true));
    out.push_str(&row("ID", &ruby_to_i(image.str_at("ID")).to_string()));
    out.push_str(&row("NAME", image.str_at("NAME")));
    out.push_str(&row("USER", image.str_at("UNAME")));
    out.push_str(&row("GROUP", image.str_at("GNAME")));
    out.push_str(&row("LOCK", lock_level(image.text_at("LOCK/LOCKED"))));
    out.push_str(&row("DATASTORE", image.str_at("DATASTORE")));
    out.push_str(&row("TYPE", &image_type_name(image.str_at("TYPE"))));
    out.push_str(&row(
        "REGISTER TIME",
        &time_to_str(image.str_at("REGTIME"), true, zone),
    ));
    out.push_str(&row(
        "LAST MODIFIED",
        &time_to_str(image.str_at("MODTIME"), true, zone),
    ));
    out.push_str(&row("PERSISTENT", yes_no(image.str_at("PERSISTENT"))));
    out.push_str(&row("SOURCE", image.str_at("SOURCE")));
    for (label, path) in [("PATH", "PATH"), ("FORMAT", "FORMAT")] {
        let value = image.str_at(path);
        if !value.is_empty() {
            out.push_str(&row(label, value));
        }
    }
    out.push_str(&row(
        "SIZE",
        &unit_to_str(ruby_to_i(image.str_at("SIZE")), "M"),
    ));
    out.push_str(&row("STATE", &image_short(image.str_at("STATE"))));
    out.push_str(&row("RUNNING_VMS", image.str_at("RUNNING_VMS")));
    out.push('\n');
    out.push_str(&style.header(&format!("{:<80}", "PERMISSIONS"), false));
    for who in ["OWNER", "GROUP", "OTHER"] {
        let bit = |b: &str, c: char| {
            if image.str_at(&format!("PERMISSIONS/{who}_{b}")) == "1" {
                c
            } else {
                '-'
            }
        };
        let mask: String = [bit("U", 'u'), bit("M", 'm'), bit("A", 'a')]
            .iter()
            .collect();
        out.push_str(&row(who, &mask));
    }
    out.push('\n');
    out.push_str(&style.header(&format!("{:<80}", "IMAGE TEMPLATE"), false));
    out.push_str(
        &image
            .child("TEMPLATE")
            .map(template_lines)
            .unwrap_or_default(),
    );
    out.push('\n');
    out
}
