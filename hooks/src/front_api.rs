//! [`VmApi`] over the front-end's XML-RPC API.

use one_client::{Client, Value};

use crate::resume::VmApi;

/// The front-end at the endpoint and with the session the OpenNebula conventions name.
pub struct FrontApi {
    client: Client,
}

impl FrontApi {
    pub fn new(client: Client) -> FrontApi {
        FrontApi { client }
    }
}

impl VmApi for FrontApi {
    fn vm_info(&self, id: i64) -> Result<String, String> {
        let id = i32::try_from(id).map_err(|_| format!("VM id {id} is out of range"))?;
        match self.client.call("one.vm.info", vec![Value::Int(id)]) {
            Ok(Value::String(xml)) => Ok(xml),
            Ok(other) => Err(format!(
                "one.vm.info returned {} instead of a string",
                other.type_name()
            )),
            Err(e) => Err(e.to_string()),
        }
    }

    fn resume(&self, id: i64) -> Result<(), String> {
        let id = i32::try_from(id).map_err(|_| format!("VM id {id} is out of range"))?;
        self.client
            .call("one.vm.action", vec!["resume".into(), Value::Int(id)])
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}
