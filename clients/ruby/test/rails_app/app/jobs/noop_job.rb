# The throughput test's job: enqueued to the paused queue "bulk", never run.
class NoopJob < ApplicationJob
  queue_as "bulk"

  def perform(*); end
end
