//! `one.image.*` and `one.imagepool.info`, parameters after the session, in order:
//!
//! | method | parameters | value |
//! |---|---|---|
//! | `one.image.allocate` | template, ds_id, [no_check_capacity] | image id |
//! | `one.image.info` | id, [decrypt] | IMAGE |
//! | `one.image.delete` | id, [force] | id |
//! | `one.image.enable` | id, enable | id |
//! | `one.imagepool.info` | [filter], [start], [end] | IMAGE_POOL |
//!
//! An image needs its owner or an oneadmin-group user.

use one_proto::states::ImageState;
use one_proto::template::Template;
use one_proto::xmlrpc::Value;

use super::objects::{done, group_name, owner_filter, read, require_owner};
use crate::AppState;
use crate::call::{ApiError, ApiOk, CallResult, Caller, Params, int_value};
use crate::cloud::image::{self, Image};
use crate::cloud::{ObjKey, OpError, next_oid};

pub(super) fn load_image(c: &rusqlite::Connection, id: i64) -> Result<Image, OpError> {
    image::load(c, id)?.ok_or_else(|| OpError::Api(ApiError::no_exists("image", id)))
}

pub(super) fn allocate(state: &AppState, caller: &Caller, p: &Params<'_>) -> CallResult {
    let cloud = state.cloud.inner();
    let text = p.string(0)?;
    let ds_id = p.int(1)?;
    p.opt_bool(2)?;
    let parsed = Template::parse(text).map_err(|e| ApiError::internal(e.oned_message(), -1))?;
    match ds_id {
        0 => {
            return Err(ApiError::action(
                "New images can only be allocated in a files or image datastore.",
                -1,
            )
            .into());
        }
        id if image::datastore_name(id).is_none() => {
            return Err(ApiError::no_exists("datastore", id).into());
        }
        _ => {}
    }
    let new = image::parse_allocation(parsed).map_err(|m| ApiError::internal(m, -1))?;
    let r = cloud.apply(|ch| {
        if let Some(other) = image::id_by_name(ch.tx, caller.uid, &new.name)? {
            return Err(
                ApiError::internal(format!("NAME is already taken by IMAGE {other}."), -1).into(),
            );
        }
        let id = next_oid(ch.tx, "image_pool")?;
        let i = Image {
            id,
            uid: caller.uid,
            gid: caller.gid,
            uname: caller.name.clone(),
            gname: group_name(ch.tx, caller.gid)?,
            name: new.name,
            itype: new.itype,
            persistent: new.persistent,
            regtime: ch.now_s(),
            source: new.source,
            path: new.path,
            format: new.format,
            fs: new.fs,
            size_mb: new.size_mb,
            state: ImageState::Locked,
            // As in oned, a new image was never stored in another state: its first change
            // (to READY) carries PREV_STATE INIT, and allocation itself emits nothing.
            prev_state: ImageState::Init,
            ds_id,
            template: new.template,
            due_ms: Some(ch.due_after(cloud.sim.image)),
        };
        image::store(ch.tx, &i)?;
        cloud.timers.set(ObjKey::Image(id), i.due_ms);
        Ok((id, i.to_xml(i.prev_state)))
    });
    let (id, xml) = done(r, -1)?;
    Ok(ApiOk::with_extra(int_value(id), xml))
}

pub(super) fn info(state: &AppState, caller: &Caller, p: &Params<'_>) -> CallResult {
    let cloud = state.cloud.inner();
    let id = p.int(0)?;
    p.opt_bool(1)?;
    let r = read(cloud, |c| {
        let i = load_image(c, id)?;
        require_owner(caller, i.uid, "USE", "IMAGE", id)?;
        Ok(i.to_xml(i.prev_state))
    });
    Ok(ApiOk::new(Value::String(done(r, id)?)))
}

pub(super) fn delete(state: &AppState, caller: &Caller, p: &Params<'_>) -> CallResult {
    let cloud = state.cloud.inner();
    let id = p.int(0)?;
    let force = p.opt_bool(1)?.unwrap_or(false);
    let r = cloud.apply(|ch| {
        let mut i = load_image(ch.tx, id)?;
        require_owner(caller, i.uid, "MANAGE", "IMAGE", id)?;
        match i.state {
            ImageState::Locked if !force => {
                return Err(ApiError::internal(
                    "Image locked, use --force flag to remove the image. Force delete may leave some files on Datastore",
                    id,
                )
                .into());
            }
            ImageState::Used | ImageState::UsedPers | ImageState::LockedUsed | ImageState::LockedUsedPers => {
                return Err(ApiError::action("Cannot delete image. There are VMs using it.", id).into());
            }
            _ => {}
        }
        let xml = i.to_xml(i.prev_state);
        if i.state != ImageState::Delete {
            i.state = ImageState::Delete;
            i.due_ms = Some(ch.due_after(cloud.sim.image));
        }
        ch.save_image(&mut i)?;
        Ok(xml)
    });
    let xml = done(r, id)?;
    Ok(ApiOk::with_extra(int_value(id), xml))
}

pub(super) fn enable(state: &AppState, caller: &Caller, p: &Params<'_>) -> CallResult {
    let cloud = state.cloud.inner();
    let id = p.int(0)?;
    let enable = p.bool(1)?;
    let r = cloud.apply(|ch| {
        let mut i = load_image(ch.tx, id)?;
        require_owner(caller, i.uid, "MANAGE", "IMAGE", id)?;
        let next = match (enable, i.state) {
            (true, ImageState::Disabled | ImageState::Error | ImageState::Ready) => {
                ImageState::Ready
            }
            (false, ImageState::Ready | ImageState::Disabled) => ImageState::Disabled,
            (_, state) => {
                let verb = if enable { "enable" } else { "disable" };
                return Err(ApiError::internal(
                    format!(
                        "Could not {verb} image: Image cannot be in state {}.",
                        state.name()
                    ),
                    id,
                )
                .into());
            }
        };
        i.state = next;
        ch.save_image(&mut i)
    });
    done(r, id)?;
    Ok(ApiOk::id(id))
}

pub(super) fn pool_info(state: &AppState, caller: &Caller, p: &Params<'_>) -> CallResult {
    let cloud = state.cloud.inner();
    let filter = p.opt_int(0)?.unwrap_or(-2);
    let start = p.opt_int(1)?.unwrap_or(-1);
    let end = p.opt_int(2)?.unwrap_or(-1);
    let r = read(cloud, |c| {
        let mut out = String::from("<IMAGE_POOL>");
        for i in image::list(
            c,
            owner_filter(caller, filter),
            (start, end),
            cloud.list_desc,
        )? {
            out.push_str(&i.to_xml(i.prev_state));
        }
        out.push_str("</IMAGE_POOL>");
        Ok(out)
    });
    Ok(ApiOk::new(Value::String(done(r, -1)?)))
}
