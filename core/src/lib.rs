//! The core component: parses and validates a query, plans one node per distinct
//! sub-expression, names the workers deterministically, and initialises them through
//! worker-to-worker RPC, children before parents. Initialising is idempotent, so submitting a
//! query again, or another query sharing sub-expressions, reuses the workers that exist.

#[allow(warnings)]
mod bindings;

use bindings::exports::timeline::core::api::{ComponentIds, Guest, JobOptions, Plan, Query};
use worker_rpc::{call_result, node_config, JobPlan};

worker_rpc::wit_conversions!(crate::bindings::timeline::types::types: values, jobs);

fn job_plan(query: Query, options: JobOptions, ids: &ComponentIds) -> Result<JobPlan, String> {
    let op = convert::query_in(query)?;
    let options = convert::options_in(options);
    if options.job_name.trim().is_empty() {
        return Err("the job needs a name (job-options.job-name)".into());
    }
    Ok(JobPlan::new(
        &op,
        &options,
        &ids.event_processor,
        &ids.timeline_processor,
    ))
}

struct Component;

impl Guest for Component {
    fn submit(query: Query, options: JobOptions, components: ComponentIds) -> Result<Plan, String> {
        let plan = job_plan(query, options, &components)?;
        for node in &plan.nodes {
            for shard in 0..plan.shards as usize {
                let inputs: Vec<_> = node
                    .inputs
                    .iter()
                    .map(|id| plan.node(id).expect("inputs are plan nodes").workers[shard].clone())
                    .collect();
                let parents: Vec<_> = plan
                    .parents_of(&node.node_id)
                    .into_iter()
                    .map(|(p, slot)| (p.workers[shard].clone(), slot))
                    .collect();
                let config = node_config(
                    &node.expression,
                    plan.key_column.as_deref(),
                    plan.retention,
                    &inputs,
                    &parents,
                );
                let worker = &node.workers[shard];
                call_result(worker, &worker.function("initialize"), vec![config])?;
            }
        }
        Ok(convert::plan_out(&plan))
    }

    fn explain(
        query: Query,
        options: JobOptions,
        components: ComponentIds,
    ) -> Result<Plan, String> {
        job_plan(query, options, &components).map(|p| convert::plan_out(&p))
    }
}

bindings::export!(Component with_types_in bindings);
