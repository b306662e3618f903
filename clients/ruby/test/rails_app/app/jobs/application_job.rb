class ApplicationJob < ActiveJob::Base
  # Where the test jobs leave their effects (a folder the tests read).
  def self.out_dir
    ENV.fetch("JOBD_TEST_OUT")
  end

  # Writes name.json atomically (rename), so a reader never sees half a file.
  def record(name, data)
    path = File.join(self.class.out_dir, "#{name}.json")
    File.write("#{path}.tmp", JSON.generate(data))
    File.rename("#{path}.tmp", path)
  end
end
