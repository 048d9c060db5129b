// Browser side of viewer_channel.ex (on viewer_socket.ex): join
// "view:camera:<id>" and show each binary "frame" push (a JPEG ArrayBuffer)
// in an <img>. As a LiveView hook:
//   <img id="cam" phx-hook="CameraView" data-camera="porch">
// and `hooks: {CameraView}` in the LiveSocket options of app.js.
import { Socket } from "phoenix"

export const CameraView = {
  mounted() {
    this.socket = new Socket("/viewer_socket", {})
    this.socket.connect()
    this.channel = this.socket.channel(`view:camera:${this.el.dataset.camera}`, {})
    this.channel.on("frame", (jpeg) => {
      const url = URL.createObjectURL(new Blob([jpeg], { type: "image/jpeg" }))
      this.el.onload = () => URL.revokeObjectURL(url)
      this.el.src = url
    })
    this.channel.join()
  },
  destroyed() {
    this.channel && this.channel.leave()
    this.socket && this.socket.disconnect()
  },
}
