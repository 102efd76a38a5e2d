//! CallFunction. A function's failure travels in the response's FunctionError, not as
//! diagnostics, so it runs outside the shared panic guard with its own.

use std::panic::AssertUnwindSafe;

use futures_util::FutureExt as _;

use super::PluginServer;
use crate::tfplug::convert::{decode_dynamic, encode_dynamic};
use crate::tfplug::proto::tfplugin6 as pb;
use crate::tfplug::resource::Provider;

pub(super) async fn call_function<P: Provider>(
    server: &PluginServer<P>,
    req: pb::call_function::Request,
) -> pb::call_function::Response {
    let Some(function) = server.functions.get(req.name.as_str()) else {
        return function_error(
            format!("This provider has no function named \"{}\".", req.name),
            None,
        );
    };
    let sig = function.signature();
    let mut args = Vec::with_capacity(req.arguments.len());
    for (i, raw) in req.arguments.iter().enumerate() {
        let param = sig.parameters.get(i).or(sig.variadic.as_ref());
        let Some(param) = param else {
            return function_error(
                format!("{} takes {} arguments.", req.name, sig.parameters.len()),
                Some(i as i64),
            );
        };
        match decode_dynamic(Some(raw), &param.ty, "function argument") {
            Ok(v) => args.push(v),
            Err(d) => return function_error(d.to_string(), Some(i as i64)),
        }
    }
    let name = req.name.clone();
    let outcome = AssertUnwindSafe(async { function.call(&args) })
        .catch_unwind()
        .await;
    match outcome {
        Ok(Ok(v)) => match encode_dynamic(&v, &sig.return_type, "function result") {
            Ok(result) => pb::call_function::Response {
                result: Some(result),
                error: None,
            },
            Err(d) => function_error(d.to_string(), None),
        },
        Ok(Err(e)) => function_error(e.text, e.argument),
        Err(_) => function_error(
            format!("{name} failed unexpectedly. This is a bug in the provider; please report it."),
            None,
        ),
    }
}

fn function_error(text: String, argument: Option<i64>) -> pb::call_function::Response {
    pb::call_function::Response {
        result: None,
        error: Some(pb::FunctionError {
            text,
            function_argument: argument,
        }),
    }
}
