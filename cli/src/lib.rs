//! Shared code of the command-line tools `onehook`, `onevm`, `onehost` and `oneimage`:
//! connection options, the reference CLI's table and show layouts, and the commands.

pub mod date;
pub mod exec_table;
pub mod hook_list;
pub mod hook_show;
pub mod table;
pub mod template_text;
pub mod terminal;
pub mod timestamp;
pub mod xml;
