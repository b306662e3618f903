# ActiveJob's own retry_on: the first execution raises, ActiveJob re-enqueues
# the job through the adapter (a new jobd job), the second execution succeeds.
class RetryOnJob < ApplicationJob
  class Oops < StandardError; end
  retry_on Oops, wait: 0, attempts: 3

  def perform(token)
    raise Oops, "first execution" if executions == 1

    record(token, "executions" => executions, "provider_job_id" => provider_job_id)
  end
end
