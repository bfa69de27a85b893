//! How PromQL's plan nodes take their input: all of it before any output (a node needs every
//! sample of a series or group first), with what they hold registered in DataFusion's memory
//! pool as it arrives, so `query.memory_limit_bytes` bounds them, and a row limit checked as
//! rows arrive rather than after the whole input is in memory.

use std::collections::HashSet;

use arrow::array::{ArrayData, RecordBatch};
use arrow::datatypes::SchemaRef;
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::metrics::BaselineMetrics;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::{StreamExt, TryStreamExt};

/// What a node holds of its input, accounted in the session's memory pool.
pub(super) struct Held {
    reservation: MemoryReservation,
    /// Buffers counted already: batches share some (a dictionary's values, above all), and
    /// each is held in memory once however many batches point at it.
    counted: HashSet<usize>,
    rows: usize,
    max_rows: Option<(usize, fn() -> DataFusionError)>,
}

impl Held {
    /// Registers `node`'s buffer for `partition` with the context's memory pool.
    pub(super) fn new(node: &str, partition: usize, context: &TaskContext) -> Self {
        Held {
            reservation: MemoryConsumer::new(format!("{node}[{partition}]"))
                .register(context.memory_pool()),
            counted: HashSet::new(),
            rows: 0,
            max_rows: None,
        }
    }

    /// Fails with `error()` as soon as more than `max` rows are held.
    pub(super) fn with_max_rows(mut self, max: usize, error: fn() -> DataFusionError) -> Self {
        self.max_rows = Some((max, error));
        self
    }

    /// Accounts one more batch; fails when it passes the row or memory limit.
    fn hold(&mut self, batch: &RecordBatch) -> DfResult<()> {
        self.rows += batch.num_rows();
        if let Some((max, error)) = self.max_rows
            && self.rows > max
        {
            return Err(error());
        }
        let mut bytes = 0;
        for column in batch.columns() {
            bytes += new_bytes(&column.to_data(), &mut self.counted);
        }
        self.reservation.try_grow(bytes)
    }
}

/// Bytes of the buffers of `data` (and its children) not counted yet.
fn new_bytes(data: &ArrayData, counted: &mut HashSet<usize>) -> usize {
    let mut bytes = 0;
    let buffers = data
        .buffers()
        .iter()
        .chain(data.nulls().map(|n| n.buffer()));
    for buffer in buffers {
        if counted.insert(buffer.data_ptr().as_ptr() as usize) {
            bytes += buffer.capacity();
        }
    }
    for child in data.child_data() {
        bytes += new_bytes(child, counted);
    }
    bytes
}

/// Every batch of `input`, accounted in `held` as it arrives.
pub(super) async fn collect_all(
    mut input: SendableRecordBatchStream,
    held: &mut Held,
) -> DfResult<Vec<RecordBatch>> {
    let mut batches = Vec::new();
    while let Some(batch) = input.try_next().await? {
        held.hold(&batch)?;
        batches.push(batch);
    }
    Ok(batches)
}

/// A stream that reads all of `input`, accounting it in `held`, then yields the batches
/// `compute` makes of it. `compute`'s time and output rows go to `baseline`, for
/// `explain?analyze=true`. The reservation is released once `compute` is done.
pub(super) fn after_all_input(
    input: SendableRecordBatchStream,
    schema: SchemaRef,
    baseline: BaselineMetrics,
    mut held: Held,
    compute: impl FnOnce(Vec<RecordBatch>) -> DfResult<Vec<RecordBatch>> + Send + 'static,
) -> SendableRecordBatchStream {
    let output = futures::stream::once(async move {
        let batches = collect_all(input, &mut held).await?;
        let timer = baseline.elapsed_compute().timer();
        let output = compute(batches)?;
        timer.done();
        drop(held);
        baseline.record_output(output.iter().map(RecordBatch::num_rows).sum());
        Ok::<_, DataFusionError>(output)
    })
    .map_ok(|batches| futures::stream::iter(batches.into_iter().map(Ok)))
    .try_flatten();
    Box::pin(RecordBatchStreamAdapter::new(schema, output.boxed()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use arrow::array::{DictionaryArray, Float64Array, StringArray, UInt32Array};
    use arrow::datatypes::{DataType, Field, Schema, UInt32Type};
    use datafusion::execution::memory_pool::GreedyMemoryPool;
    use datafusion::execution::runtime_env::RuntimeEnvBuilder;

    fn context(limit: usize) -> Arc<TaskContext> {
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(GreedyMemoryPool::new(limit)))
            .build_arc()
            .unwrap();
        Arc::new(TaskContext::default().with_runtime(runtime))
    }

    /// Batches sharing one dictionary of labels, as the join hands PromStep its input.
    fn batches(n: usize, rows: usize) -> (SchemaRef, Vec<RecordBatch>) {
        let labels: Arc<StringArray> = Arc::new(StringArray::from_iter_values(
            (0..1000).map(|i| format!("{{__name__=\"m\",instance=\"host-{i:04}\"}}")),
        ));
        let schema = Arc::new(Schema::new(vec![
            Field::new(
                "labels",
                DataType::Dictionary(Box::new(DataType::UInt32), Box::new(DataType::Utf8)),
                false,
            ),
            Field::new("value", DataType::Float64, false),
        ]));
        let batches = (0..n)
            .map(|_| {
                let keys = UInt32Array::from_iter_values((0..rows as u32).map(|i| i % 1000));
                let dict = DictionaryArray::<UInt32Type>::new(keys, labels.clone());
                let values = Float64Array::from_iter_values((0..rows).map(|i| i as f64));
                RecordBatch::try_new(schema.clone(), vec![Arc::new(dict), Arc::new(values)])
                    .unwrap()
            })
            .collect();
        (schema, batches)
    }

    fn run(
        context: &Arc<TaskContext>,
        held: Held,
        schema: SchemaRef,
        input: Vec<RecordBatch>,
    ) -> DfResult<usize> {
        let stream: SendableRecordBatchStream = Box::pin(RecordBatchStreamAdapter::new(
            schema.clone(),
            futures::stream::iter(input.into_iter().map(Ok)),
        ));
        let metrics = datafusion::physical_plan::metrics::ExecutionPlanMetricsSet::new();
        let out = after_all_input(stream, schema, BaselineMetrics::new(&metrics, 0), held, Ok);
        let batches: Vec<RecordBatch> = futures::executor::block_on(out.try_collect())?;
        assert_eq!(
            context.memory_pool().reserved(),
            0,
            "released after compute"
        );
        Ok(batches.iter().map(RecordBatch::num_rows).sum())
    }

    #[test]
    fn a_shared_dictionary_is_counted_once() {
        // 50 batches of 1000 rows: ~400 kB of values and keys, one ~40 kB dictionary. Counted
        // per batch, the dictionary alone would need 2 MB.
        let ctx = context(1 << 20);
        let (schema, input) = batches(50, 1000);
        let held = Held::new("test", 0, &ctx);
        assert_eq!(run(&ctx, held, schema, input).unwrap(), 50_000);
    }

    #[test]
    fn the_memory_limit_fails_the_collection_cleanly() {
        let ctx = context(100_000);
        let (schema, input) = batches(50, 1000);
        let held = Held::new("test", 0, &ctx);
        let error = run(&ctx, held, schema, input).unwrap_err();
        assert!(error.to_string().contains("Resources exhausted"), "{error}");
    }

    #[test]
    fn the_row_limit_fails_as_rows_arrive() {
        let ctx = context(usize::MAX);
        let (schema, input) = batches(10, 1000);
        let held = Held::new("test", 0, &ctx).with_max_rows(4_500, || {
            DataFusionError::ResourcesExhausted("too many rows".into())
        });
        let error = run(&ctx, held, schema, input).unwrap_err();
        assert!(error.to_string().contains("too many rows"), "{error}");
    }
}
