class MyJob < ApplicationJob
  queue_as "default"

  def perform(number, text)
    record(job_id, "args" => [number, text], "pid" => Process.pid, "at" => Time.now.to_f,
                   "provider_job_id" => provider_job_id, "queue" => queue_name)
  end
end
